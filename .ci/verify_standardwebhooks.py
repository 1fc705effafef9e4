"""Verifies deliveries captured by `wearbridge demo --capture FILE` with the PyPI
`standardwebhooks` library: a receiver written by someone else must accept us."""
import json
import sys

from standardwebhooks.webhooks import Webhook

path = sys.argv[1]
n = 0
with open(path) as f:
    for line in f:
        d = json.loads(line)
        wh = Webhook(d["secret"])
        # Raises WebhookVerificationError on any mismatch.
        wh.verify(d["body"], d["headers"])
        n += 1
if n == 0:
    sys.exit("no deliveries captured")
print(f"standardwebhooks: {n} passed, 0 failed")
