from annealscope.core.flops import classifier_flops, generation_flops, training_flops


def test_cost_formulas_match_the_design():
    assert training_flops(7_000_000_000, 1_000_000) == 6 * 7e9 * 1e6
    assert generation_flops(135_000_000, 100, 50) == 2 * 135e6 * 150
    assert classifier_flops(4.0, 1_000) == 4_000.0


def test_one_parameter_formula_counts_real_llamas_tied_untied_and_grouped_query():
    from transformers import LlamaConfig, LlamaForCausalLM

    from annealscope.core.flops import decoder_parameters
    from annealscope.curate.teachers import _dense_parameters

    for tied, kv_heads in ((True, 4), (False, 4), (False, 2)):
        config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                             num_attention_heads=4, num_key_value_heads=kv_heads, tie_word_embeddings=tied)
        actual = sum(parameter.numel() for parameter in LlamaForCausalLM(config).parameters())
        assert _dense_parameters(config) == actual
        if kv_heads == 4 and tied:
            assert decoder_parameters(300, 64, 3, 96) == actual  # the demo build's count (core.grid)
