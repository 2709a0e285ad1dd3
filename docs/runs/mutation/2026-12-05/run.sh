#!/bin/bash
cd /tmp/mut
export TF_CPP_MIN_LOG_LEVEL=2
TESTS="tests/test_losses.py tests/test_alc_objectives.py tests/test_train.py tests/test_fixmatch.py tests/test_vat.py tests/test_attention.py tests/test_augment.py"
N=$(.venv/bin/python -c "import sys; sys.path.insert(0,'/tmp/mutrun'); from mutants import M; print(len(M))")
for i in $(seq 0 $((N-1))); do
  name=$(.venv/bin/python - "$i" <<'PY'
import sys; sys.path.insert(0,'/tmp/mutrun'); from mutants import M
name,f,old,new = M[int(sys.argv[1])]
s=open(f).read(); c=s.count(old)
if c!=1: print(f'{name}_BADCOUNT{c}'); sys.exit()
open(f,'w').write(s.replace(old,new)); print(name)
PY
)
  if [[ "$name" == *BADCOUNT* ]]; then echo "$name" >> /tmp/mutrun/results.txt; continue; fi
  start=$(date +%s)
  out=$(.venv/bin/python -m pytest -q -x -n 2 --dist loadfile -p no:cacheprovider $TESTS 2>&1 | tail -15)
  rc=$?
  if echo "$out" | grep -q -E "[0-9]+ failed|error"; then res=KILLED; else res=SURVIVED; fi
  failing=$(echo "$out" | grep -E "^FAILED" | head -2 | cut -c1-150 | tr '\n' ';')
  echo "$name $res $(( $(date +%s) - start ))s $failing" >> /tmp/mutrun/results.txt
  git checkout -q -- alc_jax
done
echo DONE >> /tmp/mutrun/results.txt
