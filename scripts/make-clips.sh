#!/usr/bin/env bash
# Make the built-in spoken prompts (drivers/sound_clips/*.wav) from their texts.
#
#   scripts/make-clips.sh [OUTDIR]      (default: drivers/sound_clips)
#
# Voice: espeak-ng's Mandarin voice `cmn` (Debian package espeak-ng; the shipped clips
# were made with "eSpeak NG text-to-speech: 1.51" on Debian 12), speed 170 words a
# minute, then resampled to 16 kHz mono 16-bit by the Python step below (linear
# interpolation, silence at the ends cut to 40 ms, peak-normalised to 90 %). The exact
# command for each clip is:
#
#   espeak-ng -v cmn -s 170 -w RAW.wav "TEXT"
#
# The same espeak-ng version gives the same bytes. A hall replaces any clip with its
# own recording by putting PROMPT.wav in the directory `sound.clips_dir` names.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-drivers/sound_clips}
PY=${PYTHON:-python3}
command -v espeak-ng >/dev/null || { echo "make-clips.sh: apt install espeak-ng" >&2; exit 1; }
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# prompt name -> text (drivers/sound.py PROMPTS lists the names)
declare -A TEXTS=(
  [invite]="您好，请对本次服务进行评价"
  [choose_reason]="请选择不满意的原因"
  [thanks]="感谢您的评价"
  [paused]="暂停服务"
  [swipe_card]="请刷身份证"
  [not_found]="未查到待评价的业务"
  [error]="设备故障，请联系工作人员"
)

espeak-ng --version >&2
for name in "${!TEXTS[@]}"; do
  espeak-ng -v cmn -s 170 -w "$TMP/$name.wav" "${TEXTS[$name]}"
  "$PY" - "$TMP/$name.wav" "$OUT/$name.wav" <<'PYEOF'
import array, sys, wave
RATE = 16000
with wave.open(sys.argv[1], "rb") as w:
    assert w.getsampwidth() == 2 and w.getnchannels() == 1
    src_rate = w.getframerate()
    src = array.array("h", w.readframes(w.getnframes()))
n = len(src) * RATE // src_rate
out = array.array("h", bytes(2 * n))
for i in range(n):
    pos = i * src_rate / RATE
    j = int(pos)
    a = src[j]
    b = src[j + 1] if j + 1 < len(src) else a
    out[i] = int(round(a + (b - a) * (pos - j)))
# espeak-ng pads each clip with silence: keep 40 ms of it at either end, so a clip
# starts speaking at once.
loud = [i for i, v in enumerate(out) if abs(v) > 300]
keep = RATE * 40 // 1000
out = out[max(0, loud[0] - keep):loud[-1] + keep] if loud else out
peak = max(1, max(abs(v) for v in out))
gain = 0.9 * 32767 / peak
out = array.array("h", (max(-32768, min(32767, int(round(v * gain)))) for v in out))
with wave.open(sys.argv[2], "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(RATE)
    w.writeframes(out.tobytes())
PYEOF
  echo "$OUT/$name.wav: ${TEXTS[$name]}" >&2
done
