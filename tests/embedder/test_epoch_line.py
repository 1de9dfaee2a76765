import math

from whale_embedder.train import epoch_summary


def test_an_epoch_line_says_what_the_threshold_did():
    base = {"train_loss": 10.34, "lr": 0.002837, "images_per_s": 55.0, "val_map5": 0.1369, "val_map5_known": 0.1382}
    none_new = epoch_summary(base | {"val_map5_new": 0.0, "val_threshold": 0.0})
    assert none_new == "train_loss 10.34, lr 0.002837, val_map5 0.1369 (known 0.1382, best with no photo called new)"
    called = epoch_summary(base | {"val_map5_new": 0.55, "val_threshold": 0.35})
    assert called.endswith("(known 0.1382, new 0.55 with new_individual below similarity 0.35)")
    all_known = epoch_summary(base | {"val_map5_new": math.nan, "val_threshold": 0.2})
    assert all_known.endswith("(known 0.1382, every val animal in the gallery)")
    assert epoch_summary({"train_loss": 9.0, "lr": 0.001}) == "train_loss 9, lr 0.001"  # an epoch not validated
