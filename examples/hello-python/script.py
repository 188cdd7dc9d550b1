"""Reads the task payload from $COMPUTALOT_TASK_PAYLOAD and writes a JSON result."""
import json
import os

with open(os.environ["COMPUTALOT_TASK_PAYLOAD"]) as f:
    payload = json.load(f)

result = {"echo": payload, "message": "hello from computalot"}

result_path = os.environ.get("COMPUTALOT_RESULT_PATH")
if result_path:
    with open(result_path, "w") as f:
        json.dump(result, f)
else:
    print(json.dumps(result))
