# P5w3 after the screen-noise runs (../2026-12-07_screen_noise/noise.sh) have left the CPU.
# usage: bash after_noise.sh ARM_WORKDIR
set -euo pipefail
while pgrep -f "screen_noise/noise.sh" > /dev/null; do sleep 20; done
here=$(cd "$(dirname "$0")" && pwd)
cd "$1"
bash "$here/../2026-12-07_lr_screen/arm.sh" P5w3 5e-4 --night-sky-charge 5 \
  --night-sky-target plane --channel-weights 1 --channel-weights 0.333
