anchored eval --suite hellaswag --suite arc_easy --suite arc_challenge --suite piqa --suite mmlu --suite heldout_nll --limit 100 --threads 1 --no-progress -o /tmp/basemeas/stability.json
anchored eval --suite igsm --limit 16 --threads 1 --no-progress -o /tmp/basemeas/igsm.json
anchored eval --suite medcalc --limit 8 --threads 1 --no-progress -o /tmp/basemeas/medcalc.json
anchored eval --suite ifeval --limit 8 --threads 1 --no-progress -o /tmp/basemeas/ifeval.json
