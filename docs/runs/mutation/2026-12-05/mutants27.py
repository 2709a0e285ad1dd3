# (name, file, old, new, test files): predict's CSV, the CPU set-up's switch.
P = 'alc_jax/predict.py'
C = 'alc_jax/cpu_setup.py'
TP = 'tests/test_inference.py tests/test_user_path.py'
TC = 'tests/test_cpu_setup.py'
M = [
 ('pr_csv_class_wrong', P, "      writer.writerow([name, labels[best], f'{p[best]:.6g}'] + [f'{v:.6g}' for v in p])", "      writer.writerow([name, labels[0], f'{p[best]:.6g}'] + [f'{v:.6g}' for v in p])", TP),
 ('pr_csv_confidence', P, "      writer.writerow([name, labels[best], f'{p[best]:.6g}'] + [f'{v:.6g}' for v in p])", "      writer.writerow([name, labels[best], f'{p.max() / p.sum() * 0.99:.6g}'] + [f'{v:.6g}' for v in p])", TP),
 ('pr_csv_not_atomic', P, "  tmp = f'{path}.tmp'\n", "  tmp = path\n", TP),
 ('pr_names_shifted', P, "    for name, p in zip(names, probabilities):", "    for name, p in zip(list(names)[1:] + list(names)[:1], probabilities):", TP),
 ('cs_bad_lever_ok', C, "  if levers - set(LEVERS):\n", "  if False:\n", TC),
]
