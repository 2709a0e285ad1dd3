"""alc_jax/host.py: the CPU and vector ISA read from /proc/cpuinfo, and hosts.json across resumes.
(That a resume on another host prints the note and results.json lists the hosts is checked end to
end in tests/test_train_end_to_end.py.)"""

import json

from alc_jax import host

ZEN4 = '''processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_bf16

processor\t: 1
model name\t: something else
flags\t\t: fpu
'''
ARM = 'processor\t: 0\nFeatures\t: fp asimd evtstrm aes\nCPU implementer\t: 0x41\n'


def test_parse_cpuinfo_names_the_cpu_and_its_widest_vector_isa():
  assert host.parse_cpuinfo(ZEN4) == ('AMD EPYC (family 25 model 17)', 'avx512f')
  zen3 = ZEN4.replace('model\t\t: 17', 'model\t\t: 1').replace(' avx512f avx512bw avx512_bf16', '')
  assert host.parse_cpuinfo(zen3) == ('AMD EPYC (family 25 model 1)', 'avx2')
  assert host.parse_cpuinfo(ARM) == (None, 'asimd')
  assert host.parse_cpuinfo('') == (None, None)


def test_this_machine_is_described():
  name, isa = host.cpu()
  assert name and (isa is None or isa in host.VECTOR_ISAS)
  found = host.current()
  assert found['platform'] == 'cpu' and found['cpu'] == name and found['cpu_isa'] == isa


def test_hosts_json_has_one_entry_per_stretch_of_steps_on_one_host(tmp_path):
  a = {'platform': 'cpu', 'cpu': 'AMD EPYC (family 25 model 17)', 'cpu_isa': 'avx512f'}
  b = {**a, 'cpu': 'AMD EPYC (family 25 model 1)', 'cpu_isa': 'avx2'}
  workdir = str(tmp_path)
  assert host.record(workdir, 0, a) == ([{'from_step': 0, **a}], [])
  assert host.record(workdir, 300, a) == ([{'from_step': 0, **a}], [])  # Same host: no entry.
  hosts, changed = host.record(workdir, 600, b)
  assert hosts == [{'from_step': 0, **a}, {'from_step': 600, **b}] and changed == ['cpu', 'cpu_isa']
  note = host.resume_note(hosts, changed, 600)
  assert "cpu_isa: 'avx512f' -> 'avx2'" in note and 'step 600' in note
  assert json.loads((tmp_path / host.HOSTS_FILE).read_text()) == hosts
  # Resumed from an earlier checkpoint (step 300) on host a again: steps 300 on ran on a.
  assert host.record(workdir, 300, a) == ([{'from_step': 0, **a}], [])
  # A fresh start (step 0) forgets the old entries.
  host.record(workdir, 600, b)
  assert host.record(workdir, 0, b) == ([{'from_step': 0, **b}], [])
