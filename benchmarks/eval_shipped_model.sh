#!/usr/bin/env bash
# Held-out evaluation of the shipped default model (issue: beat OpenCV MIL on RGB only and on
# thermal only by >= 0.10 SR on >= 20 unseen synthetic sequences, every attribute present).
#
#   scripts/with_env.sh bash benchmarks/eval_shipped_model.sh [OUT_DIR] [CHECKPOINT]
#
# The held-out set uses run seed 2026 (training used 1000), 96 sequences x 150 frames at
# 640x512 in the LasHeR layout (dense per-frame GT; out-of-view frames are all-zero rows, which
# the LasHeR rules count as hits for PR and misses for SR). Attributes: sequence i gets
# attribute i mod 8 plus random extras, so all 8 appear 12 times and in both size profiles.
# All trackers run the authors' tracker logic (no LOST state) so the comparison is like for like.
#
# Until model v5 the set was the first 24 of these sequences (sequence i of a seed does not
# depend on the count, so they are byte-identical). Two models' SR on 24 sequences differed by
# 2-4 points in opposite directions on another 24-sequence set (seed 4040), so 24 were too few
# to rank versions; the 24-sequence prefix is still scored (`first24`) for continuity.
set -euo pipefail
out="${1:-runs/heldout96}"
ckpt="${2:-models/ckd_tiny_synth.safetensors}"
count="${HELDOUT_SEQUENCES:-96}"
data="$out/data"
ev="$out/eval"
[ -f "$data/sequences.txt" ] || ckd synth --layout lasher --seed 2026 --sequences "$count" --frames 150 \
  --width 640 --height 512 --profile mixed --out "$data" --workers 2
ckd eval --dataset lasher --root "$data" --baseline opencv-mil-rgb --out "$ev" --workers 2 --no-progress
ckd eval --dataset lasher --root "$data" --baseline opencv-mil-thermal --out "$ev" --workers 2 --no-progress
ckd eval --dataset lasher --root "$data" --checkpoint "$ckpt" --name ckd_tiny_synth --out "$ev" \
  --workers 2 --no-progress \
  --compare "mil_rgb=$ev/opencv-mil-rgb" --compare "mil_thermal=$ev/opencv-mil-thermal"
head -n 24 "$data/sequences.txt" > "$ev/first24.txt"
ckd score --dataset lasher --gt-root "$data" --sequences "$ev/first24.txt" \
  --results "ckd_tiny_synth=$ev/ckd_tiny_synth" --results "mil_rgb=$ev/opencv-mil-rgb" \
  --results "mil_thermal=$ev/opencv-mil-thermal" --json "$ev/first24.json"
echo "report: $ev/report.md (all $count sequences); first 24 sequences: $ev/first24.json"
