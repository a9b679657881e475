#!/usr/bin/env bash
# bench/op_profile.sh — where a pre-packed inference forward of the bench CLIP towers spends its time, op by op
# (issue 19): `braid bench speed --infer-only --prepack --op-profile` on the image and the text tower (the model
# of bench/clip_speed.sh, batch 32 and 1), each without (BRAID_FUSED_INFER=0, "before") and with the fused
# inference kernels of nn/fused_infer.h ("after"), one binary. Prints one Markdown table per tower and batch:
# op, calls per forward, self ms per forward and % of the forward, before and after (scopes: core/op_profile.h).
#
#   bash bench/op_profile.sh
#   PROFILE_STEPS=20 CLOCK=wall THREADS=2 bash bench/op_profile.sh
#
# Environment: BRAID (build/apps/braid/braid), THREADS (1), PROFILE_STEPS (10: forwards at B = 32; 4x as many at
# B = 1), CLOCK (cpu: the thread's CPU time, so other processes on a shared host do not inflate a 1-thread
# profile; wall: elapsed time, for several threads), OUT (temp dir, kept: prof.TOWER.VARIANT.json).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
THREADS=${THREADS:-1}  # before lib.sh, whose default is nproc
# shellcheck source=bench/clip_speed.sh
source "$ROOT/bench/clip_speed.sh"   # lib.sh, CLIP_RECIPE, CLIP_DATA, CLIP_SETS (its main part runs only when executed)
PROFILE_STEPS=${PROFILE_STEPS:-10}
CLOCK=${CLOCK:-cpu}
need_braid bench speed
[ -f "$CLIP_DATA" ] || "$BRAID" data build emoji --out "$(dirname "$CLIP_DATA")" --threads "$THREADS" >&2
for tower in image text; do
  if [ "$tower" = text ]; then mods='model.modalities=[text, image]'; else mods='model.modalities=[image, text]'; fi
  for variant in before after; do
    say "== $tower tower, $variant"
    fused=1; [ "$variant" = before ] && fused=0
    BRAID_FUSED_INFER=$fused "$BRAID" bench speed "$CLIP_RECIPE" --data "$CLIP_DATA" "${CLIP_SETS[@]}" --set "$mods" \
      --threads "$THREADS" --infer-only --prepack --steps "$PROFILE_STEPS" --repeats 1 --op-profile --op-clock "$CLOCK" \
      --json >"$OUT/prof.$tower.$variant.json"
  done
done
"$PY" - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
for tower in ("image", "text"):
    j = {v: json.load(open(os.path.join(out, f"prof.{tower}.{v}.json"))) for v in ("before", "after")}
    for key in ("batch", "one"):
        p = {v: j[v]["op_profile"][key] for v in j}
        rows = {v: {r["op"]: r for r in p[v]["rows"]} for v in p}
        tot = {v: sum(r["self_ms"] for r in p[v]["rows"]) for v in p}
        print(f"\n{tower} tower, B = {p['after']['batch_size']} ({p['after']['forwards']} forwards, {p['after']['clock']} clock; "
              f"ms = self time per forward)\n")
        print("| op | calls | before ms | before % | after ms | after % |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        ops = sorted(set(rows["before"]) | set(rows["after"]), key=lambda o: -rows["before"].get(o, {"self_ms": 0})["self_ms"])
        n = p["after"]["forwards"]
        for o in ops:
            b, a = rows["before"].get(o), rows["after"].get(o)
            calls = (a or b)["calls"] // n
            cell = lambda r, v: f"{r['self_ms']:.3f} | {100 * r['self_ms'] / tot[v]:.1f}" if r else "- | -"
            print(f"| {o} | {calls} | {cell(b, 'before')} | {cell(a, 'after')} |")
        print(f"| total | | {tot['before']:.3f} | 100.0 | {tot['after']:.3f} | 100.0 |")
        print(f"\nrates of the timed runs before the profile (samples/s, wall): before {j['before']['infer_samples_per_s_b64' if key == 'batch' else 'infer_samples_per_s_b1']:.1f}, "
              f"after {j['after']['infer_samples_per_s_b64' if key == 'batch' else 'infer_samples_per_s_b1']:.1f}")
EOF
machine_line
