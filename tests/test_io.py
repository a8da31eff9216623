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
