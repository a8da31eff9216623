from annealscope.core.flops import classifier_flops, generation_flops, training_flops


def test_cost_formulas_match_the_design():
    assert training_flops(7_000_000_000, 1_000_000) == 6 * 7e9 * 1e6
    assert generation_flops(135_000_000, 100, 50) == 2 * 135e6 * 150
    assert classifier_flops(4.0, 1_000) == 4_000.0
