"""Split/list files of the real datasets, parsed strictly: an error names file and line.

nvGesture (``nvgesture_{train,test}_correct_cvpr2016_v2.lst``), one video per line:
    path:./Video_data/class_01/subject3_r0 depth:sk_depth:146:226 color:sk_color:146:226 duo_left:duo_left:170:263 label:1
The class (1..25) comes from ``label:``, not from the folder (they disagree on some
lines); each sensor has its own 0-based frame range ``range(start, end)``; the
colour video is ``<path>/sk_color.avi``.

UCF101 split 1: ``classInd.txt`` (``1 ApplyEyeMakeup``), ``trainlist01.txt``
(``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1``), ``testlist01.txt`` (path
only: the class comes from the folder). Class names match case-insensitively
(the lists say HandStandPushups where classInd says HandstandPushups).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .video import DataFormatError

NV_CLASSES = 25


@dataclass(frozen=True)
class NvGestureVideo:
    path: str  # relative to the dataset root, e.g. ./Video_data/class_01/subject3_r0
    label: int  # 0-based class
    ranges: dict[str, tuple[int, int]]  # sensor -> (start, end), frames range(start, end)

    def video(self, root: Path, sensor: str = "color") -> Path:
        return Path(root) / self.path / f"sk_{sensor}.avi"


def read_nvgesture_list(path: Path) -> list[NvGestureVideo]:
    videos = []
    for no, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = {}
        for token in line.split():
            key, sep, value = token.partition(":")
            if not sep:
                raise DataFormatError(f"{path}:{no}: expected key:value, got {token!r}")
            fields[key] = value
        for key in ("path", "color", "label"):
            if key not in fields:
                raise DataFormatError(f"{path}:{no}: missing field {key!r} in {line.strip()!r}")
        ranges = {}
        for sensor, value in fields.items():
            if sensor in ("path", "label"):
                continue
            parts = value.split(":")
            try:
                start, end = int(parts[-2]), int(parts[-1])
            except (ValueError, IndexError):
                raise DataFormatError(f"{path}:{no}: {sensor}: expected name:start:end, got {value!r}") from None
            if not 0 <= start < end:
                raise DataFormatError(f"{path}:{no}: {sensor}: empty or negative frame range {start}:{end}")
            ranges[sensor] = (start, end)
        try:
            label = int(fields["label"])
        except ValueError:
            raise DataFormatError(f"{path}:{no}: label: expected an integer, got {fields['label']!r}") from None
        if not 1 <= label <= NV_CLASSES:
            raise DataFormatError(f"{path}:{no}: label {label} outside 1..{NV_CLASSES}")
        videos.append(NvGestureVideo(fields["path"], label - 1, ranges))
    return videos


def read_class_index(path: Path) -> dict[str, int]:
    """classInd.txt -> {lower-case class name: 0-based index}."""
    classes = {}
    for no, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataFormatError(f"{path}:{no}: expected '<index> <ClassName>', got {line.strip()!r}")
        classes[parts[1].lower()] = int(parts[0]) - 1
    if sorted(classes.values()) != list(range(len(classes))):
        raise DataFormatError(f"{path}: class indices are not 1..{len(classes)}")
    return classes


def read_ucf_split(path: Path, classes: dict[str, int]) -> list[tuple[str, int]]:
    """trainlist/testlist -> [(relative video path, 0-based class)]."""
    out = []
    for no, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        video = parts[0]
        folder = video.split("/")[0].lower()
        if folder not in classes:
            raise DataFormatError(f"{path}:{no}: unknown class {video.split('/')[0]!r} (not in classInd.txt)")
        label = classes[folder]
        if len(parts) > 1:
            if not parts[1].isdigit() or int(parts[1]) - 1 != label:
                raise DataFormatError(f"{path}:{no}: label {parts[1]!r} does not match class "
                                      f"{video.split('/')[0]!r} ({label + 1} in classInd.txt)")
        out.append((video, label))
    return out


def resolve_case_insensitive(root: Path, relative: str) -> Path:
    """UCF-101/<Class>/<file> whatever the case of <Class> and <file> on disk."""
    here = Path(root)
    for part in Path(relative).parts:
        exact = here / part
        if exact.exists():
            here = exact
            continue
        matches = [p for p in here.iterdir() if p.name.lower() == part.lower()] if here.is_dir() else []
        if not matches:
            raise FileNotFoundError(f"missing: {here / part} (matched case-insensitively)")
        here = matches[0]
    return here
