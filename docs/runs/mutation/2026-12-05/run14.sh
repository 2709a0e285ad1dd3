#!/bin/bash
cd /tmp/mut
export TF_CPP_MIN_LOG_LEVEL=2
N=$(.venv/bin/python -c "import sys; sys.path.insert(0,'/tmp/mutrun'); from mutants14 import M; print(len(M))")
for i in $(seq 0 $((N-1))); do
  read name tests < <(.venv/bin/python - "$i" <<'PY'
import sys; sys.path.insert(0,'/tmp/mutrun'); from mutants14 import M
name,f,old,new,tests = M[int(sys.argv[1])]
s=open(f).read(); c=s.count(old)
if c!=1: print(f'{name}_BADCOUNT{c} x'); sys.exit()
open(f,'w').write(s.replace(old,new)); print(name, tests)
PY
)
  if [[ "$name" == *BADCOUNT* ]]; then echo "$name" >> /tmp/mutrun/results14.txt; continue; fi
  start=$(date +%s)
  out=$(.venv/bin/python -m pytest -q -x -p no:cacheprovider $tests 2>&1 | tail -15)
  if echo "$out" | grep -q -E "[0-9]+ (failed|errors?)( |,|$)"; then res=KILLED; else res=SURVIVED; fi
  failing=$(echo "$out" | grep -E "^FAILED" | head -2 | cut -c1-150 | tr '\n' ';')
  echo "$name $res ($tests) $(( $(date +%s) - start ))s $failing" >> /tmp/mutrun/results14.txt
  git checkout -q -- alc_jax launch
done
echo DONE >> /tmp/mutrun/results14.txt
