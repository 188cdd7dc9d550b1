"""Asks the counter service for a number, keeps a run log in the cache mount, and returns both."""
import json
import os
import urllib.request

with open(os.environ["COMPUTALOT_TASK_PAYLOAD"]) as f:
    payload = json.load(f)

counter = int(urllib.request.urlopen("http://127.0.0.1:7070/", timeout=5).read())

# /cache is a cache mount: kept on this worker across tasks and revisions of the project.
os.makedirs("/cache/models", exist_ok=True)
with open("/cache/models/runs.txt", "a") as f:
    f.write(json.dumps(payload) + "\n")
with open("/cache/models/runs.txt") as f:
    runs = len(f.readlines())

with open("/tmp/initialized-at") as f:
    initialized_at = int(f.read())

with open(os.environ["COMPUTALOT_RESULT_PATH"], "w") as f:
    json.dump({"counter": counter, "runs_in_cache": runs, "initialized_at": initialized_at, "payload": payload}, f)
