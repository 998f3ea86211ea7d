import numpy as np
import pytest

from grounding.data.records import MomentRecord
from grounding.data.text import HFTextEncoder, PrecomputedText, WordVocabulary, tokenize
from grounding.errors import GroundingError


def _rec(query, qid=0):
    return MomentRecord(qid, query, "v", 10.0, [[0, 1]])


def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("The man's DOG, runs-fast.") == ["the", "man's", "dog", "runs", "fast"]


def test_vocab_from_training_sentences_maps_unknown_words_to_unk():
    vocab = WordVocabulary(min_freq=2)
    vocab.fit([_rec("a person opens a door"), _rec("a person sits")])
    assert vocab.words == ["<pad>", "<unk>", "a", "person"]
    ids = vocab.encode(_rec("A zebra person"), max_words=10)
    assert ids.tolist() == [2, 1, 3]
    assert vocab.encode(_rec("a a a a"), max_words=2).tolist() == [2, 2]
    assert vocab.encode(_rec("!!!"), max_words=5).tolist() == [1]  # never an empty query


def test_vocab_state_round_trip():
    vocab = WordVocabulary()
    vocab.fit([_rec("open the door")])
    other = WordVocabulary()
    other.load_state(vocab.state())
    assert other.encode(_rec("the door"), 5).tolist() == vocab.encode(_rec("the door"), 5).tolist()


def test_glove_initialisation_copies_known_vectors(tmp_path):
    glove = tmp_path / "g.txt"
    glove.write_text("door 1 2 3\nzebra 9 9 9\nopen 4 5 6\n")
    vocab = WordVocabulary(glove=str(glove))
    vocab.fit([_rec("open door now")])
    matrix = vocab.pretrained_embeddings(3)
    assert matrix[vocab.index["door"]].tolist() == [1, 2, 3]
    assert matrix[vocab.index["open"]].tolist() == [4, 5, 6]
    assert matrix[0].tolist() == [0, 0, 0]
    with pytest.raises(GroundingError, match="model.word_dim=3"):
        vocab.pretrained_embeddings(300)


def test_precomputed_text_reads_per_qid_npz(tmp_path):
    np.savez(tmp_path / "5.npz", features=np.ones((7, 4), np.float32))
    text = PrecomputedText(str(tmp_path))
    assert text.encode(_rec("x", qid=5), max_words=3).shape == (3, 4)
    with pytest.raises(GroundingError, match="6.npz is missing"):
        text.encode(_rec("x", qid=6), 3)


def test_hf_encoder_loads_from_a_local_folder(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "person", "opens", "door"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32)
    BertModel(config).save_pretrained(tmp_path)
    encoder = HFTextEncoder(str(tmp_path))
    feats = encoder.encode(_rec("a person opens door"), max_words=10)
    assert feats.shape == (6, 16)  # [CLS] + 4 words + [SEP]
    with pytest.raises(GroundingError, match="never downloaded"):
        HFTextEncoder(str(tmp_path / "missing"))
