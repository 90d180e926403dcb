# Shared by the example pipelines (sourced): STEP_NAME names the pipeline in the log lines.
log() { echo "[${STEP_NAME:-step} $(date +%T)] $*"; }
# run OUTPUT COMMAND...: run unless OUTPUT exists (an interrupted pipeline resumes); the
# command writes to @OUT@, a part name, renamed to OUTPUT at the end (no partial outputs).
# OUTPUT is a file (x.part.ext) or a folder without a suffix (x.part).
run() {
    local out="$1"
    shift
    if [[ -e "$out" ]]; then
        log "exists, skipping: $out"
        return
    fi
    log "$out <- $1"
    local part="$out.part"
    if [[ "$out" == *.* ]]; then part="${out%.*}.part.${out##*.}"; fi
    rm -rf "$part"
    "${@//@OUT@/$part}"
    mv "$part" "$out"
}
