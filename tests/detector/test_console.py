import contextlib
import io

from whale_detector.yolo_env import plain_console, prepare_ultralytics


def test_ultralytics_bars_reach_a_log_file_as_one_plain_line():
    """The real ultralytics bar (the one its image cache draws, whatever the log level), in a log file."""
    prepare_ultralytics()
    from ultralytics.utils import colorstr
    from ultralytics.utils.tqdm import TQDM

    log_file = io.StringIO()
    with contextlib.redirect_stdout(log_file), plain_console():
        bar = TQDM(range(300), total=300, disable=False, mininterval=0.0)
        for i in bar:
            bar.desc = f"{colorstr('train: ')}Caching images ({i} photos)"
        bar.close()
        print("after")
    lines = log_file.getvalue().splitlines()
    assert "\x1b" not in log_file.getvalue() and "\r" not in log_file.getvalue()
    assert len(lines) == 2 and lines[0].startswith("train: Caching images (299 photos)") and "300/300" in lines[0]
    assert lines[1] == "after"


def test_without_redirection_the_frames_would_be_there():
    """The same bar without `plain_console`: the colour codes and frames the wrapper removes."""
    from ultralytics.utils.tqdm import TQDM

    log_file = io.StringIO()
    with contextlib.redirect_stdout(log_file):
        bar = TQDM(range(50), total=50, disable=False, mininterval=0.0, desc="\x1b[34mtrain: \x1b[0m")
        for _ in bar:
            pass
        bar.close()
    assert "\x1b[" in log_file.getvalue() and log_file.getvalue().count("\r") > 1
