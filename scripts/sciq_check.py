"""Held-out behaviour check: sciq_chat accuracy (60 seeded SciQ items, seed 0, 1 thread) of a model.

Usage: python results/igsm-calibration/sciq_check.py [MODEL_FOLDER]   (default: the bundled base model)
Prints accuracy, wall time and the first generations; outputs for the calibration models are in
sciq_check.txt (the base model printed acc 0.35 in the same session).
"""
import time, torch, sys
torch.set_num_threads(1)
from anchored_learning.models import load_model_and_tokenizer, resolve_model_path
from anchored_learning.evaluation.suites import evaluate
m,tok=load_model_and_tokenizer(sys.argv[1] if len(sys.argv)>1 else resolve_model_path(None))
t0=time.time()
r=evaluate(m,tok,["sciq_chat"],limits={"sciq_chat":60},seed=0,batch_size=8)["results"]["sciq_chat"]
print("acc",r["primary"],"n",r["n"],"time",time.time()-t0)
for p in r["predictions"][:12]: print(repr(p))
