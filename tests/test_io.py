import pytest

from annealscope.core.io import atomic_path


def test_atomic_writes_leave_no_partial_file_and_normal_permissions(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("{}")
    assert target.read_text() == "{}" and target.stat().st_mode & 0o044


def test_an_atomic_folder_keeps_the_users_umask_for_what_a_writer_made_private(tmp_path):
    import os

    from annealscope.core.io import atomic_path

    previous = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "model", directory=True) as tmp:
            weights = tmp / "model.safetensors"
            weights.write_bytes(b"weights")
            weights.chmod(0o600)  # as safetensors writes it
            (tmp / "nested").mkdir(mode=0o700)
    finally:
        os.umask(previous)
    assert (tmp_path / "model" / "model.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "model" / "nested").stat().st_mode & 0o777 == 0o755
