"""Encoder, CTC head, greedy decoding and the length bookkeeping between them."""
import pytest
import torch

from bljust.config import ConfigError
from bljust.models.asr_model import AsrModel, ModelConfig, utterance_mean_norm
from bljust.models.ctc import CtcHead, ctc_greedy, min_ctc_frames
from bljust.models.rnnt import RnntConfig, RnntHead


def make_model(**enc):
    conf = {"cnn_layers": 3, "latent_dim": 32, "lstm_layers": 2, "lstm_units": 16, "dropout": 0.0, **enc}
    return AsrModel(80, 10, ModelConfig("cnn_lstm", conf)).eval()


def test_shapes_and_lengths():
    model = make_model()
    feats, lengths = torch.randn(3, 101, 80), torch.tensor([101, 57, 4])
    enc, log_probs = model(feats, lengths)
    assert enc.latent.shape == (3, 26, 32)
    assert enc.context.shape == (3, 26, 32)
    assert log_probs.shape == (3, 26, 10)
    assert enc.lengths.tolist() == [26, 15, 1]  # ceil(L / 4) for two stride-2 layers
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3, 26), atol=1e-5)


def test_padding_does_not_change_outputs():
    """An utterance's outputs are the same alone or padded in a batch with a longer one."""
    model = make_model()
    x = torch.randn(1, 40, 80)
    alone, _ = model(x, torch.tensor([40]))
    batch = torch.cat([torch.cat([x, torch.zeros(1, 60, 80)], 1), torch.randn(1, 100, 80)])  # collate pads with 0
    padded, _ = model(batch, torch.tensor([40, 100]))
    n = int(alone.lengths[0])
    assert torch.allclose(alone.context[0, :n], padded.context[0, :n], atol=1e-5)
    assert torch.all(padded.latent[0, n:] == 0)


@pytest.mark.parametrize("layers", [1, 2])
def test_padded_lstms_equal_the_packed_ones(layers):
    """The encoder's BiLSTM and CPC's GRU run on padded batches (fast on a CPU): outputs and
    gradients equal those of the packed sequences at every valid frame, in float64; padding is 0."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from bljust.models.cnn_lstm import bilstm_padded, reverse_padded

    torch.manual_seed(0)
    x, lengths = torch.randn(3, 9, 5, dtype=torch.float64), torch.tensor([9, 4, 1])
    assert torch.equal(reverse_padded(reverse_padded(x, lengths), lengths), x)
    assert torch.equal(reverse_padded(x, lengths)[1, :4], x[1, :4].flip(0))
    for rnn, run in ((torch.nn.LSTM(5, 6, layers, batch_first=True, bidirectional=True), bilstm_padded),
                     (torch.nn.GRU(5, 6, layers, batch_first=True), lambda m, v, n: m(v)[0])):
        rnn = rnn.double()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        expected = pad_packed_sequence(rnn(packed)[0], batch_first=True, total_length=9)[0]
        got = run(rnn, x, lengths) * (torch.arange(9)[None, :] < lengths[:, None]).unsqueeze(-1)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
        grads = [torch.autograd.grad(out.pow(2).sum(), list(rnn.parameters())) for out in (got, expected)]
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_utterance_input_norm():
    """input_norm: utterance subtracts each utterance's mean over its valid frames; padding stays 0,
    so an utterance gives the same outputs alone or padded, and a constant offset changes nothing."""
    feats, lengths = torch.randn(2, 30, 80), torch.tensor([30, 12])
    feats[1, 12:] = 0
    normed = utterance_mean_norm(feats, lengths)
    assert torch.allclose(normed[0], feats[0] - feats[0].mean(0), atol=1e-6)
    assert torch.allclose(normed[1, :12], feats[1, :12] - feats[1, :12].mean(0), atol=1e-6)
    assert torch.all(normed[1, 12:] == 0)

    conf = {"cnn_layers": 3, "latent_dim": 32, "lstm_layers": 1, "lstm_units": 16, "dropout": 0.0}
    model = AsrModel(80, 10, ModelConfig("cnn_lstm", conf, input_norm="utterance")).eval()
    shifted = feats + torch.linspace(-3, 3, 80)  # a different average spectrum, e.g. another voice
    shifted[1, 12:] = 0
    a, _ = model(feats, lengths)
    b, _ = model(shifted, lengths)
    alone, _ = model(feats[1:, :12], lengths[1:])
    assert torch.allclose(a.context, b.context, atol=1e-5)
    assert torch.allclose(alone.context[0], a.context[1, :alone.context.shape[1]], atol=1e-5)
    with pytest.raises(ConfigError, match="input_norm 'speaker'"):
        AsrModel(80, 10, ModelConfig("cnn_lstm", conf, input_norm="speaker"))


def test_parameter_groups_partition_the_model():
    model = make_model()
    groups = model.parameter_groups()
    ids = [id(p) for g in groups.values() for p in g]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert len(groups["eta"]) > 0


@pytest.mark.parametrize("cnn,lstm", [(2, 4), (3, 5), (4, 6)])
def test_depth_sweep_builds(cnn, lstm):
    model = make_model(cnn_layers=cnn, lstm_layers=lstm)
    assert sum(1 for m in model.encoder.convs) == cnn
    assert model.encoder.lstm.num_layers == lstm


def test_bad_encoder_conf_names_the_key():
    with pytest.raises(ConfigError, match="encoder_conf.lstm_unitz"):
        make_model(lstm_unitz=3)
    with pytest.raises(ConfigError, match="subsampling must be a power of 2"):
        make_model(subsampling=3)
    with pytest.raises(ConfigError, match="unknown encoder 'transformerx'"):
        AsrModel(80, 10, ModelConfig("transformerx", {}))


def test_ctc_greedy_collapses_repeats_and_blanks():
    # frames: a a <b> a b b <b> | padding
    ids = [1, 1, 0, 1, 2, 2, 0, 2]
    log_probs = torch.full((1, 8, 3), -10.0)
    log_probs[0, torch.arange(8), torch.tensor(ids)] = 0.0
    assert ctc_greedy(log_probs, torch.tensor([7])) == [[1, 1, 2]]


def test_min_ctc_frames_counts_repeats():
    assert min_ctc_frames([1, 2, 3]) == 3
    assert min_ctc_frames([1, 1, 2, 2, 2]) == 8
    assert min_ctc_frames([]) == 0


def test_supervised_heads_name_their_loss_beam_search_and_joint():
    """The SupervisedHead members callers read instead of asking which class a head is."""
    ctc, rnnt = CtcHead(8, 5), RnntHead(8, 5, RnntConfig(embed_dim=4, pred_units=6, joint_dim=6)).eval()
    assert (ctc.loss_name, rnnt.loss_name) == ("CTC", "RNN-T")
    assert ctc.own_beam_search(4) is None and ctc.joint_cost(2, 7, 3) is None
    assert rnnt.joint_cost(2, 7, 3) == 2 * 7 * (3 + 1) * 5  # B x T' x (U+1) x V
    enc, lengths = rnnt(torch.randn(2, 6, 8)), torch.tensor([6, 4])
    assert rnnt.own_beam_search(3)(enc, lengths) == rnnt.beam_search(enc, lengths, 3)


def test_mask_replaces_latent_frames_before_the_context_network():
    model = make_model()
    feats, lengths = torch.randn(2, 60, 80), torch.tensor([60, 40])
    plain = model.encoder(feats, lengths)
    mask = torch.zeros(2, 15, dtype=torch.bool)
    mask[0, 3:6] = True
    embedding = torch.randn(32)
    masked = model.encoder(feats, lengths, mask, embedding)
    assert torch.equal(masked.latent, plain.latent)  # targets come from the unmasked latent
    assert not torch.allclose(masked.context[0], plain.context[0])  # a BiLSTM: every frame hears the mask
    torch.testing.assert_close(masked.context[1], plain.context[1])  # nothing masked in utterance 1
    with pytest.raises(ValueError, match="mask_embedding"):
        model.encoder(feats, lengths, mask)


def test_init_from_a_model_package(tmp_path):
    """init: model_best.pt copies the encoder; a head is carried over only where it fits (a CTC head
    does not fit an RNN-T one), and an encoder of another shape is refused naming its tensors."""
    from bljust.pretrained.init import InitError, load_init

    ctc = make_model()
    with torch.no_grad():
        for p in ctc.parameters():
            p.add_(0.5)
    package = {"config": {"encoder": "cnn_lstm", "sup": "ctc", "unsup": "cpc"}, "input_dim": 80, "vocab_size": 10,
               "steps": 7, "model": ctc.state_dict()}
    torch.save(package, tmp_path / "model_best.pt")
    conf = {"cnn_layers": 3, "latent_dim": 32, "lstm_layers": 2, "lstm_units": 16, "dropout": 0.0}
    rnnt = AsrModel(80, 10, ModelConfig("cnn_lstm", conf, sup="rnnt", sup_conf={"pred_units": 8, "joint_dim": 8}))
    fresh_sup = {k: v.clone() for k, v in rnnt.sup.state_dict().items()}
    lines = load_init(rnnt, tmp_path / "model_best.pt")
    for k, v in ctc.encoder.state_dict().items():
        assert torch.equal(rnnt.encoder.state_dict()[k], v), k
    for k, v in ctc.unsup.state_dict().items():
        assert torch.equal(rnnt.unsup.state_dict()[k], v), k
    assert all(torch.equal(rnnt.sup.state_dict()[k], v) for k, v in fresh_sup.items())
    assert lines[0].startswith("encoder: ") and "step 7" in lines[0]
    assert "sup: freshly initialised (the package's ctc head does not fit rnnt of this config)" in lines
    assert any(line.startswith("unsup: ") and "carried over" in line for line in lines), lines

    wider = AsrModel(80, 10, ModelConfig("cnn_lstm", {**conf, "lstm_units": 24}))
    with pytest.raises(InitError, match=r"does not fit the model's encoder:\n  mis-shaped: "):
        load_init(wider, tmp_path / "model_best.pt")
    with pytest.raises(InitError, match="input_dim: the package's is 80, the data's 40"):
        load_init(AsrModel(40, 10, ModelConfig("cnn_lstm", conf)), tmp_path / "model_best.pt")
