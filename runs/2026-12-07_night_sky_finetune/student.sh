# The 4-step student of a night-sky fine-tune: v14's piece 4 (docs/model_card.md,
# *Reproducing it*) with the teacher's night-sky times and loss weights (a student must keep
# the night-sky setting). Interrupted, it continues where it stopped.
# usage: [WORKDIR=.] [TEACHER=ns_ft] [NIGHT_SKY_CHARGE=5] bash student.sh
#        (WORKDIR holds train8.training.safetensors and $TEACHER.safetensors)
set -e
cd "${WORKDIR:-.}"
teacher=${TEACHER:-ns_ft}
resume=()
[ -e "${teacher}_student4.state.safetensors" ] && resume=(--resume)
/usr/bin/time -v ctapipe-genshower-train -i train8.training.safetensors -o "${teacher}_student4.safetensors" \
    --model small-asinh-linear-time --init-model "$teacher.safetensors" \
    --distill-steps 4 --teacher-substeps 4 --steps 1500 --batch-size 32 --lr 1e-4 \
    --TrainTool.warmup_steps=100 --ema-decay 0.998 --seed 3 \
    --night-sky-charge "${NIGHT_SKY_CHARGE:-5}" --night-sky-target plane \
    --channel-weights 1 --channel-weights 0.333 \
    --checkpoint-interval 500 --validation-interval 500 --TrainTool.validation_events=256 \
    --no-progress "${resume[@]}" >> "${teacher}_student4.train.log" 2>&1
