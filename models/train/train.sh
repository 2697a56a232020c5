#!/usr/bin/env bash
# Reproduces vigil's model bundle and model card, as root, in one command:
#
#   sudo models/train/train.sh            # full run: writes models/bundle/ and models/MODEL_CARD.md
#   sudo models/train/train.sh --smoke    # a few packages, small models, output in a temp dir (CI)
#
# 1. a Python venv (models/train/.venv) with the pinned requirements.txt;
# 2. cargo build --release (the extractor and tract scorer are vigil's own);
# 3. benign rows: fetch_debian.py (Debian packages in packages.txt, by apt-get
#    download + dpkg-deb -x into scratch space; reserved packages refused),
#    build_local.py (programs compiled here with Debian's compilers and cargo;
#    crates from crates.io) and fetch_wheels.py (PyPI wheels in wheels.txt);
# 4. malicious rows: `vigil features --tar` over the shared corpus (read in
#    memory, never unpacked): both archives (the second, mostly unlabelled
#    honeypot captures, only in a full run), the first also with --mutations for
#    augmentation; group_malware.py groups them for the split (manifest
#    families, the names the shared YARA rules give, near-identical builds);
# 5. adversarial.py: a first model, given its block threshold on the
#    calibration packages (step 6's calibrate.py), attacked (`vigil model
#    attack`) on the training-fold malware; its evasive variants join the
#    augmentation rows; train.py with augmentation (the shipped bundle; each
#    cross-validation model also gets calibrated thresholds, for the card's
#    out-of-fold default-configuration table); hello-world programs
#    compiled here (in no data set) scored with it, for the card; the mutation
#    suite and the adaptive attack on it; then train.py without augmentation
#    ("before") and the mutation suite on that;
# 6. the block threshold: calibrate.py on the held-out calibration packages
#    (calibration.txt, fetched like packages.txt into DATA/calibration; never
#    trained or validated on), at most 1 in 10,000 benign ELF files blocked;
# 7. card.py writes the model card from both runs.
#
# Environment: VIGIL_TRAIN_DATA (default /var/cache/vigil-train: downloads and
# feature rows, reused by later runs), VIGIL_CORPUS (default ../shared/corpus),
# VIGIL_CONTENT (default ../shared/content: hash lists and YARA rules for the
# whole-pipeline columns of the mutation suite; optional), VIGIL_BIN (a vigil
# binary to use instead of building one).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD

SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
die() { echo "models/train/train.sh: $*" >&2; exit 1; }

DATA=${VIGIL_TRAIN_DATA:-/var/cache/vigil-train}
CORPUS=${VIGIL_CORPUS:-$ROOT/../shared/corpus}
CONTENT=${VIGIL_CONTENT:-$ROOT/../shared/content}
ARCHIVE=$CORPUS/linux-malware-train.tar.xz
EXTRA=$CORPUS/linux-malware-extra.tar.xz
[ -r "$ARCHIVE" ] || die "no corpus archive at $ARCHIVE (set VIGIL_CORPUS)"
[ -r "$CORPUS/manifest.csv" ] || die "no $CORPUS/manifest.csv"
for tool in apt-get dpkg-deb python3; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
# Donors for mutations that borrow benign bytes: one for training augmentation,
# a different one for measuring, so the measurement is not of a memorised donor.
DONOR_TRAIN=/usr/bin/gpg
DONOR_EVAL=/usr/bin/ssh
for d in "$DONOR_TRAIN" "$DONOR_EVAL"; do [ -r "$d" ] || die "donor $d missing (apt-get install gpg openssh-client)"; done

if [ "$SMOKE" = 1 ]; then
    WORK=$(mktemp -d /tmp/vigil-train-smoke.XXXXXX)
    DATA=$WORK/data
    OUT=$WORK/bundle
    CARD=$WORK/MODEL_CARD.md
    FETCH_ARGS=(--limit 8)
    TRAIN_ARGS=(--smoke)
    # No calibration packages (a second apt index would double the fetch
    # time): calibrate.py runs on the smoke run's own benign rows, so the
    # path is exercised; the threshold means nothing.
    CALIB_DATA=$DATA
    CALIB_ARGS=(--min-files 0)
    # The whole-pipeline columns need no third-party content to be exercised;
    # leaving it out keeps the CI run short (no YARA compile and scans).
    CONTENT=/nonexistent
    # The adaptive attack, only exercised: a few samples, few queries.
    ATTACK_ARGS=(--limit 4 --queries 20)
    ATTACK_EVAL_LIMIT=4
    ATTACK_EVAL_QUERIES=20
else
    WORK=$DATA/run
    OUT=$ROOT/models/bundle
    CARD=$ROOT/models/MODEL_CARD.md
    FETCH_ARGS=()
    TRAIN_ARGS=()
    CALIB_DATA=$DATA/calibration
    CALIB_ARGS=(--exclude "$DATA/features")
    # A seeded 300 of the ~1,250 training-fold files and the first 150 of the
    # validation fold: 200 queries cost about 2 s per file, so all of them
    # would add an hour to the run.
    ATTACK_ARGS=(--queries 200 --limit 300)
    ATTACK_EVAL_LIMIT=150
    ATTACK_EVAL_QUERIES=200
fi
mkdir -p "$WORK" "$DATA"

step() { echo; echo "== $* ($(date +%T))"; }

step "python venv"
VENV=$ROOT/models/train/.venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r models/train/requirements.txt
PY=$VENV/bin/python

if [ -n "${VIGIL_BIN:-}" ]; then
    VIGIL=$VIGIL_BIN # scripts/test.sh passes the test build's binary
else
    step "cargo build --release"
    if ! command -v cargo >/dev/null && [ -d "${HOME:-/root}/.cargo/bin" ]; then export PATH="${HOME:-/root}/.cargo/bin:$PATH"; fi
    cargo build --release --locked -p vigil
    VIGIL=$ROOT/target/release/vigil
fi

step "benign rows from Debian packages"
"$PY" models/train/fetch_debian.py --data "$DATA" --vigil "$VIGIL" "${FETCH_ARGS[@]}"

step "malicious rows from the corpus (in memory)"
"$VIGIL" features --tar "$ARCHIVE" --label label=1 > "$WORK/malware.csv"
"$VIGIL" features --tar "$ARCHIVE" --label label=1 --mutations --donor "$DONOR_TRAIN" > "$WORK/malware-mutated.csv"
MALWARE_ARGS=(--malware "$WORK/malware.csv" --manifest "$CORPUS/manifest.csv")
ATTACK_SETS=(--malware "$WORK/malware.csv" --archive "$ARCHIVE")
ATTACK_TARS=(--tar "$ARCHIVE")
GROUP_ARGS=(--rows "$WORK/malware.csv" --manifest "$CORPUS/manifest.csv")
# The second archive: a full run only (a smoke run groups the first archive
# alone, which exercises the same path in seconds).
if [ "$SMOKE" = 0 ] && [ -r "$EXTRA" ] && [ -r "$CORPUS/extra-manifest.csv" ]; then
    "$VIGIL" features --tar "$EXTRA" --label label=1 > "$WORK/malware-extra.csv"
    MALWARE_ARGS+=(--malware "$WORK/malware-extra.csv" --manifest "$CORPUS/extra-manifest.csv")
    ATTACK_SETS+=(--malware "$WORK/malware-extra.csv" --archive "$EXTRA")
    ATTACK_TARS+=(--tar "$EXTRA")
    GROUP_ARGS+=(--rows "$WORK/malware-extra.csv" --manifest "$CORPUS/extra-manifest.csv")
    if [ -d "$CONTENT/yara" ]; then
        # The family names the shared YARA rules give, per file (in memory).
        printf '[content]\nrules = ["%s"]\nrules_on_error = "skip"\n' "$CONTENT/yara" > "$WORK/yara-only.toml"
        "$VIGIL" eval --config "$WORK/yara-only.toml" --malicious "$ARCHIVE" --malicious "$EXTRA" \
            --per-file "$WORK/malware-yara.csv" > /dev/null
        GROUP_ARGS+=(--yara "$WORK/malware-yara.csv")
    fi
fi
step "malware groups for the split"
"$PY" models/train/group_malware.py "${GROUP_ARGS[@]}" --out "$WORK/malware-groups.csv"
MALWARE_ARGS+=(--groups "$WORK/malware-groups.csv")

pipeline_config() { # bundle-dir -> config file for the whole-pipeline columns
    local cfg=$WORK/pipeline-$(basename "$1").toml
    {
        echo "[content]"
        if [ -d "$CONTENT/hashes" ]; then echo "hashes = [\"$CONTENT/hashes\"]"; fi
        if [ -d "$CONTENT/yara" ]; then echo "rules = [\"$CONTENT/yara\"]"; echo 'rules_on_error = "skip"'; fi
        echo "model = \"$1\""
    } > "$cfg"
    echo "$cfg"
}

mutation_suite() { # bundle-dir report.json out.csv
    "$PY" -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["validation"]["validation_malware"]))' "$2" > "$WORK/validation-malware.txt"
    # The validation fold holds files of both archives: one run per archive,
    # one header.
    local cfg tar first=1
    cfg=$(pipeline_config "$1")
    : > "$3"
    for tar in "${ATTACK_TARS[@]}"; do
        [ "$tar" = --tar ] && continue
        "$VIGIL" model mutations --config "$cfg" --tar "$tar" \
            --donor "$DONOR_EVAL" --only "$WORK/validation-malware.txt" | { [ "$first" = 1 ] && cat || tail -n +2; } >> "$3"
        first=0
    done
}

# Adversarial augmentation (adversarial.py): a first model (no CV), attacked
# by `vigil model attack` on the training-fold malware only; the evasive
# variants join the augmentation rows in their original's group.
step "first model, for the adaptive attack"
"$PY" models/train/train.py --benign "$DATA/features" "${MALWARE_ARGS[@]}" \
    --augment "$WORK/malware-mutated.csv" \
    --out "$WORK/first" --report "$WORK/first.json" --vigil "$VIGIL" --no-cv "${TRAIN_ARGS[@]}"
# The block threshold, on benign files no model saw (calibrate.py): fetched
# once (cached), used for the first model here, for each cross-validation
# model's thresholds (train.py --calibration, reporting only) and for the
# shipped model below.
if [ "$SMOKE" = 0 ]; then
    step "benign rows of the calibration packages"
    "$PY" models/train/fetch_debian.py --data "$CALIB_DATA" --list models/train/calibration.txt \
        --packages-only --vigil "$VIGIL"
fi
# The first model gets its block threshold before it is attacked, so the
# attack's evasive variants include those that slip under the block threshold
# (where the shipped model's evasions are found), not only under detection.
step "block threshold of the first model"
"$PY" models/train/calibrate.py --bundle "$WORK/first" --benign "$CALIB_DATA/features" --vigil "$VIGIL" \
    --report "$WORK/first-calibration.json" "${CALIB_ARGS[@]}"
step "adaptive attack on the training folds"
"$PY" models/train/adversarial.py --vigil "$VIGIL" --bundle "$WORK/first" --report "$WORK/first.json" \
    "${ATTACK_SETS[@]}" --donor "$DONOR_TRAIN" --augment "$WORK/malware-mutated.csv" \
    --out "$WORK/malware-augment.csv" --work "$WORK" "${ATTACK_ARGS[@]}"

step "train with augmentation (shipped)"
"$PY" models/train/train.py --benign "$DATA/features" "${MALWARE_ARGS[@]}" \
    --augment "$WORK/malware-augment.csv" \
    --out "$OUT" --report "$WORK/after.json" --vigil "$VIGIL" --calibration "$CALIB_DATA/features" "${TRAIN_ARGS[@]}"
step "block threshold"
# The anomaly model is judged at the same operating point: enabled only if it
# blocks validation malware the classifier lets through and no calibration file.
ANOMALY_ARGS=(--train-report "$WORK/after.json" --malware "$WORK/malware.csv")
[ -r "$WORK/malware-extra.csv" ] && ANOMALY_ARGS+=(--malware "$WORK/malware-extra.csv")
"$PY" models/train/calibrate.py --bundle "$OUT" --benign "$CALIB_DATA/features" --vigil "$VIGIL" \
    --report "$WORK/calibration.json" "${CALIB_ARGS[@]}" "${ANOMALY_ARGS[@]}"
# Programs compiled here the way a developer does, none of them in the data:
# the shortcut "not built like a Debian package" would flag them.
step "held-out check: programs compiled here"
SANITY=$WORK/sanity
rm -rf "$SANITY" && mkdir -p "$SANITY"
printf '#include <stdio.h>\nint main(void) { puts("hello, world"); return 0; }\n' > "$SANITY/hello.c"
printf 'fn main() { println!("hello, world"); }\n' > "$SANITY/hello.rs"
n=0
for flags in "-O2" "-O0 -g" "-Os -s" "-O2 -static" "-O2 -fno-pie -no-pie" "-O2 -c"; do
    n=$((n + 1))
    # shellcheck disable=SC2086 # the flags are words
    gcc $flags "$SANITY/hello.c" -o "$SANITY/hello-c-$n"
done
g++ -O2 -x c++ "$SANITY/hello.c" -o "$SANITY/hello-cxx"
if command -v rustc >/dev/null; then
    rustc -C opt-level=0 -g "$SANITY/hello.rs" -o "$SANITY/hello-rs-debug"
    rustc -C opt-level=3 "$SANITY/hello.rs" -o "$SANITY/hello-rs-release"
fi
rm "$SANITY"/hello.c "$SANITY"/hello.rs
"$VIGIL" features "$SANITY" > "$WORK/sanity-features.csv"
"$VIGIL" model score --bundle "$OUT" "$WORK/sanity-features.csv" > "$WORK/sanity-scores.csv"

step "mutation suite (after)"
mutation_suite "$OUT" "$WORK/after.json" "$WORK/mutations-after.csv"
# The adaptive attacker on the validation malware, against the shipped model
# and the default pipeline (built-in content, the new bundle), with a donor
# the training attack never used.
step "adaptive attack (after)"
printf '[content]\nmodel = "%s"\n' "$OUT" > "$WORK/attack-default.toml"
head -n "$ATTACK_EVAL_LIMIT" "$WORK/validation-malware.txt" > "$WORK/attack-eval-only.txt"
"$VIGIL" model attack --config "$WORK/attack-default.toml" "${ATTACK_TARS[@]}" --donor "$DONOR_EVAL" \
    --only "$WORK/attack-eval-only.txt" --queries "$ATTACK_EVAL_QUERIES" \
    --summary "$WORK/attack-after.json" > "$WORK/attack-after.csv"

# The same kind of classifier without augmentation: what the augmentation bought.
KIND=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["shipped"])' "$WORK/after.json")
step "train without augmentation (before; $KIND)"
"$PY" models/train/train.py --benign "$DATA/features" "${MALWARE_ARGS[@]}" \
    --out "$WORK/before" --report "$WORK/before.json" \
    --vigil "$VIGIL" --no-cv --classifier "$KIND" "${TRAIN_ARGS[@]}"
step "mutation suite (before)"
mutation_suite "$WORK/before" "$WORK/before.json" "$WORK/mutations-before.csv"

CARD_ARGS=(--groups "$WORK/malware-groups.csv" --attack "$WORK/attack-after.json")
if [ "$SMOKE" = 0 ]; then
    # What the default configuration (built-in content and the new bundle)
    # denies, flags and misses, per file; the card keeps the validation fold.
    step "default configuration on the malware (per file)"
    printf '[content]\nmodel = "%s"\n' "$OUT" > "$WORK/default.toml"
    EVAL_SETS=(--malicious "$ARCHIVE")
    [ -r "$WORK/malware-extra.csv" ] && EVAL_SETS+=(--malicious "$EXTRA")
    "$VIGIL" eval --config "$WORK/default.toml" "${EVAL_SETS[@]}" --per-file "$WORK/default-eval.csv" \
        > "$WORK/default-eval.txt"
    CARD_ARGS+=(--default-eval "$WORK/default-eval.csv")
fi

step "model card"
"$PY" models/train/card.py "${CARD_ARGS[@]}" --before "$WORK/before.json" --after "$WORK/after.json" \
    --mutations-before "$WORK/mutations-before.csv" --mutations-after "$WORK/mutations-after.csv" \
    --sanity-features "$WORK/sanity-features.csv" --sanity-scores "$WORK/sanity-scores.csv" \
    --calibration "$WORK/calibration.json" \
    --manifest "$CORPUS/manifest.csv" --out "$CARD"
echo
echo "bundle: $OUT"
echo "card:   $CARD"
if [ "$SMOKE" = 1 ]; then
    "$VIGIL" model info --bundle "$OUT"
    rm -rf "$WORK"
fi
