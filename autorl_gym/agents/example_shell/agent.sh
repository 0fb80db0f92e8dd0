#!/usr/bin/env bash
# The example external agent. It runs inside the sandbox, in the workspace, with TASK,
# BASE_MODEL, MODEL_PATH, DATA_PATH, OUTPUT_DIR, GRADING_SERVER_URL, RUN_ID and RUN_TOKEN set;
# this folder has been copied into code/. It knows nothing of Python's autorl_gym: only HTTP.
set -euo pipefail

api() {  # api METHOD PATH [JSON]: one call to the grading server; fails loudly on 4xx/5xx
    curl --silent --show-error --fail-with-body -X "$1" \
        -H "Authorization: Bearer $RUN_TOKEN" -H "Content-Type: application/json" \
        ${3:+--data "$3"} "$GRADING_SERVER_URL$2"
    echo
}

echo "task: $TASK, base model: $BASE_MODEL, grading server: $GRADING_SERVER_URL"
api GET "/runs/$RUN_ID/time"

# Train: supervised fine-tuning on the train split; the model lands in $OUTPUT_DIR/v1.
SFT_EPOCHS="${SFT_EPOCHS:-2}" python code/train_sft.py

# Submit it (graded on the hidden feedback split), then finish with it.
api POST "/runs/$RUN_ID/submit" '{"model_path": "output/v1"}'
api POST "/runs/$RUN_ID/finish" '{"model_path": "output/v1"}'
