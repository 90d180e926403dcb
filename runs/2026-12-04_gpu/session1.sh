#!/usr/bin/env bash
# One GPU session: the generator alone, training throughput, and a 4-step student of the
# bundled default distilled on the teacher's own images in the time left.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
DEV=${DEV:-cuda}
SB=${SB:-"1024 4096 16384"}; TB=${TB:-4096}; TRB=${TRB:-"128 512"}; TRS=${TRS:-300}
PROBE=${PROBE:-300}; MAXTI=${MAXTI:-200000}; DB=${DB:-256}
DATA=.gpu/sub3000.training.safetensors
TEACHER=ctapipe_genshower/resources/default_model.safetensors
STUDENT=runs/2026-12-04_asinh/student4_asinh_linear.safetensors
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
 python -c "import torch; print(torch.__version__)") 2>&1 | tee $OUT/gpu.txt
date +%s > $OUT/t0
if [ "${FROM:-}" != distill ]; then
timeout 100 python benchmarks/bench_generator.py --devices $DEV --model $STUDENT --steps 4 \
  --batch $SB --variants plain bf16 channels-last-bf16 --repeats 3 2>&1 | tee $OUT/bench_student.txt
timeout 70 python benchmarks/bench_generator.py --devices $DEV --model $TEACHER --steps 20 \
  --batch $TB --variants plain bf16 channels-last-bf16 --repeats 2 2>&1 | tee $OUT/bench_teacher.txt
for b in $TRB; do
  timeout 70 python examples/train_without_ctapipe.py $DATA /tmp/t$b.safetensors --device $DEV \
    --batch-size $b --steps $TRS --shower-steps 100 --checkpoint-interval 100000 2>&1 \
    | tail -1 | sed "s/^/batch $b: /" | tee -a $OUT/train_throughput.txt
done
fi
PTI=${PTI:-4096}
timeout ${PT:-100} python examples/train_without_ctapipe.py $DATA /tmp/probe.safetensors --device $DEV \
  --init-model $TEACHER --distill-steps 4 --teacher-substeps 4 --teacher-images $PTI \
  --steps $PROBE --batch-size $DB --lr 2e-4 --checkpoint-interval 100000 --validation-interval 100000 > $OUT/distill_probe.txt 2>&1
tail -3 $OUT/distill_probe.txt
# the distillation gets what is left of TOTAL seconds, less a margin for writing
LEFT=$(( ${TOTAL:-540} - $(date +%s) + $(cat $OUT/t0) ))
BUDGET=$(( LEFT - 45 )); [ $BUDGET -lt 60 ] && BUDGET=60
read STEPS TI < <(python - $OUT/distill_probe.txt $BUDGET $PROBE $MAXTI $PTI $DB <<'PY'
import re, sys
text = open(sys.argv[1]).read()
budget, probe, maxti, pti, db = float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
gen = float(re.search(r"generated [0-9]+ images in ([0-9.]+) s", text).group(1))
total = float(re.search(r"([0-9.]+) s in all", text).group(1))
rate = float(re.search(r"([0-9.]+) training images/s", text).group(1))
gen_rate = pti / max(gen, 0.5)
ti = int(min(maxti, gen_rate * 0.15 * budget))
overhead = max(total - gen - probe * db / rate, 0.0)  # start-up, teacher loading, writing
print(max(200, int((budget - ti / gen_rate - overhead) * rate / db)), ti)
PY
)
: ${STEPS:=2000}; : ${TI:=50000}
echo "distilling: $STEPS steps on $TI teacher images, $BUDGET s planned, $LEFT s left" | tee $OUT/distill_plan.txt
timeout $(( LEFT - 5 )) python examples/train_without_ctapipe.py $DATA $OUT/student4_gpu.safetensors \
  --device $DEV --init-model $TEACHER --distill-steps 4 --teacher-substeps 4 --teacher-images $TI \
  --steps $STEPS --batch-size $DB --lr 2e-4 --checkpoint-interval 2000 --validation-interval 2000 > $OUT/distill.log 2>&1
grep -v "^step " $OUT/distill.log | tail -5
echo "elapsed $(( $(date +%s) - $(cat $OUT/t0) )) s"
