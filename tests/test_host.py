"""alc_jax/host.py: the CPU and vector ISA read from /proc/cpuinfo, and hosts.json across resumes.
(That a resume on another host prints the note and results.json lists the hosts is checked end to
end in tests/test_train_end_to_end.py.)"""

import json

import jax
import pytest

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
  assert host.cpu_in_words(*host.parse_cpuinfo(ZEN4)) == 'AMD EPYC (family 25 model 17), avx512f'
  assert host.cpu_in_words('Apple M2', None) == 'Apple M2, ISA unknown'


def test_this_machine_is_described():
  name, isa = host.cpu()
  assert name and (isa is None or isa in host.VECTOR_ISAS)
  found = host.current(num_devices=3)
  assert found['num_devices'] == 3 and found['jaxlib']
  if found['platform'] == 'cpu':
    assert found['cpu'] == name and found['cpu_isa'] == isa


def test_xla_flags_are_recorded_sorted_without_dump_flags(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--xla_b=1 --xla_dump_to=/tmp/x --xla_a=2')
  assert host.current()['xla_flags'] == ['--xla_a=2', '--xla_b=1']


A = {'platform': 'cpu', 'cpu': 'AMD EPYC (family 25 model 17)', 'cpu_isa': 'avx512f'}
B = {**A, 'cpu': 'AMD EPYC (family 25 model 1)', 'cpu_isa': 'avx2'}


def test_hosts_json_has_one_entry_per_stretch_of_steps_on_one_host(tmp_path):
  workdir = str(tmp_path)
  assert host.record(workdir, 0, A) == ([{'from_step': 0, **A}], [])
  assert host.record(workdir, 300, A) == ([{'from_step': 0, **A}], [])  # Same host: no entry.
  hosts, changed = host.record(workdir, 600, B)
  assert hosts == [{'from_step': 0, **A}, {'from_step': 600, **B}] and changed == ['cpu', 'cpu_isa']
  note = host.resume_note(hosts, changed, 600)
  assert "cpu_isa: 'avx512f' -> 'avx2'" in note and 'step 600' in note
  assert json.loads((tmp_path / host.HOSTS_FILE).read_text()) == hosts
  # Resumed from an earlier checkpoint (step 300) on host A again: steps 300 on ran on A.
  assert host.record(workdir, 300, A) == ([{'from_step': 0, **A}], [])
  # A fresh start (step 0) forgets the old entries.
  host.record(workdir, 600, B)
  assert host.record(workdir, 0, B) == ([{'from_step': 0, **B}], [])
  # A key that an older entry lacks (a later version records more) is not a change.
  assert host.record(workdir, 900, {**B, 'new_key': 1}) == ([{'from_step': 0, **B}], [])
  # So is a setting that an older entry's jax_settings lacks; a recorded one that differs is.
  settings = {'jax_default_matmul_precision': 'None'}
  host.record(workdir, 0, {**B, 'jax_settings': settings})
  newer = {**B, 'jax_settings': {**settings, 'jax_default_prng_impl': 'threefry2x32'}}
  assert host.record(workdir, 300, newer)[1] == []
  rbg = {**B, 'jax_settings': {**settings, 'jax_default_prng_impl': 'rbg'}}
  assert host.record(workdir, 300, rbg)[1] == []  # Step 0's entry lacks it: unknown, no change.
  assert host.record(workdir, 300, {**rbg, 'jax_settings': {
      'jax_default_matmul_precision': 'highest'}})[1] == ['jax_settings']


def test_a_run_begun_before_hosts_were_recorded_starts_its_list_at_the_resume(tmp_path):
  hosts, changed = host.record(str(tmp_path), 600, B)
  assert hosts == [{'from_step': 600, **B}] and changed == []


def test_a_broken_hosts_json_warns_and_starts_again(tmp_path):
  for text in ('[{"from_st', '{"from_step": 0}', '[{"cpu": "x"}]'):
    (tmp_path / host.HOSTS_FILE).write_text(text)
    with pytest.warns(RuntimeWarning, match='not a list of host entries'):
      assert host.record(str(tmp_path), 600, B) == ([{'from_step': 600, **B}], [])


def test_only_process_0_writes_hosts_json(tmp_path, monkeypatch):
  monkeypatch.setattr(jax, 'process_index', lambda: 1)
  assert host.record(str(tmp_path), 0, A) == ([{'from_step': 0, **A}], [])
  assert not (tmp_path / host.HOSTS_FILE).exists()
