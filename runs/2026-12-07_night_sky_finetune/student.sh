# The 4-step student of the night-sky fine-tune: v14's piece 4 (docs/model_card.md,
# *Reproducing it*) with the teacher's night-sky times and loss weights (a student must keep
# the night-sky setting). Interrupted, it continues where it stopped.
# usage: [WORKDIR=.] bash student.sh   (WORKDIR holds train8.training.safetensors and ns_ft.safetensors)
set -e
cd "${WORKDIR:-.}"
resume=()
[ -e ns_ft_student4.state.safetensors ] && resume=(--resume)
/usr/bin/time -v ctapipe-genshower-train -i train8.training.safetensors -o ns_ft_student4.safetensors \
    --model small-asinh-linear-time --init-model ns_ft.safetensors \
    --distill-steps 4 --teacher-substeps 4 --steps 1500 --batch-size 32 --lr 1e-4 \
    --TrainTool.warmup_steps=100 --ema-decay 0.998 --seed 3 \
    --night-sky-charge 5 --night-sky-target plane --channel-weights 1 --channel-weights 0.333 \
    --checkpoint-interval 500 --validation-interval 500 --TrainTool.validation_events=256 \
    --no-progress "${resume[@]}" >> ns_ft_student4.train.log 2>&1
