"""nvGesture and UCF101 list files in their real formats, and their errors."""

import pytest

from prernn.data.splits import (read_class_index, read_nvgesture_list, read_ucf_split,
                                resolve_case_insensitive)
from prernn.data.vw300 import DataFormatError

NV = ("path:./Video_data/class_01/subject3_r0 depth:sk_depth:146:226 color:sk_color:150:230 "
      "duo_left:duo_left:170:263 label:1 \n"
      "path:./Video_data/class_02/subject1_r1 depth:sk_depth:10:90 color:sk_color:10:90 duo_left:duo_left:1:50 label:3 \n")


def test_nvgesture_list(tmp_path):
    p = tmp_path / "nvgesture_train_correct_cvpr2016_v2.lst"
    p.write_text(NV)
    a, b = read_nvgesture_list(p)
    assert a.label == 0 and a.ranges["color"] == (150, 230) and a.ranges["depth"] == (146, 226)
    assert b.label == 2  # from label:, though the folder says class_02
    assert str(a.video(tmp_path)).endswith("Video_data/class_01/subject3_r0/sk_color.avi")


@pytest.mark.parametrize("line,error", [
    ("path:./x color:sk_color:1:9", r":1: missing field 'label'"),
    ("path:./x color:sk_color:1:x label:1", r":1: color: expected name:start:end"),
    ("path:./x color:sk_color:9:9 label:1", r":1: color: empty or negative frame range 9:9"),
    ("path:./x color:sk_color:1:9 label:26", r":1: label 26 outside 1\.\.25"),
    ("path:./x color:sk_color:1:9 label:one", r":1: label: expected an integer"),
    ("path:./x colour label:1", r":1: expected key:value, got 'colour'"),
])
@pytest.mark.bad_input
def test_nvgesture_bad_lines(tmp_path, line, error):
    p = tmp_path / "l.lst"
    p.write_text(line + "\n")
    with pytest.raises(DataFormatError, match=r"l\.lst" + error):
        read_nvgesture_list(p)


def test_ucf101_split_case_insensitive(tmp_path):
    (tmp_path / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 HandstandPushups\n")
    (tmp_path / "trainlist01.txt").write_text("HandStandPushups/v_HandStandPushups_g08_c01.avi 2\n")
    (tmp_path / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n")
    classes = read_class_index(tmp_path / "classInd.txt")
    assert read_ucf_split(tmp_path / "trainlist01.txt", classes) == [("HandStandPushups/v_HandStandPushups_g08_c01.avi", 1)]
    assert read_ucf_split(tmp_path / "testlist01.txt", classes) == [("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", 0)]
    video = tmp_path / "UCF-101" / "HandstandPushups" / "v_HandStandPushups_g08_c01.avi"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"")
    assert resolve_case_insensitive(tmp_path / "UCF-101", "HandStandPushups/v_HandStandPushups_g08_c01.avi") == video


@pytest.mark.bad_input
def test_ucf101_errors(tmp_path):
    (tmp_path / "classInd.txt").write_text("1 ApplyEyeMakeup\n")
    classes = read_class_index(tmp_path / "classInd.txt")
    (tmp_path / "t.txt").write_text("ApplyEyeMakeup/a.avi 1\nJuggling/v_Juggling_g01_c01.avi 2\n")
    with pytest.raises(DataFormatError, match=r"t\.txt:2: unknown class 'Juggling'"):
        read_ucf_split(tmp_path / "t.txt", classes)
    (tmp_path / "t.txt").write_text("ApplyEyeMakeup/a.avi 7\n")
    with pytest.raises(DataFormatError, match=r"t\.txt:1: label '7' does not match"):
        read_ucf_split(tmp_path / "t.txt", classes)
    (tmp_path / "bad.txt").write_text("ApplyEyeMakeup\n")
    with pytest.raises(DataFormatError, match=r"bad\.txt:1: expected '<index> <ClassName>'"):
        read_class_index(tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError, match="matched case-insensitively"):
        resolve_case_insensitive(tmp_path, "NoSuchClass/x.avi")
