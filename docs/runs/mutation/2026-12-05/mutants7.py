# (name, file, old, new, test files): a user's own images in (npz files, image folders).
T = 'tests/test_user_data.py tests/test_datasets.py'
N, I = 'alc_jax/data/npz_files.py', 'alc_jax/data/image_files.py'
M = [
 ('npz_float_images', N, "  if x.dtype != np.uint8:\n", "  if False:\n", T),
 ('npz_label_count', N, "  if y.shape[0] != count:\n", "  if False:\n", T),
 ('npz_negative_label', N, "  if y.size and y.min() < 0:\n", "  if False:\n", T),
 ('npz_mixed_layouts', N, "if semi and any(k in arrays for k in ('x_train', 'y_train')):", "if False:", T),
 ('npz_size_mismatch', N, "    if x.shape[1:] != x_train.shape[1:]:\n", "    if False:\n", T),
 ('npz_half_pair', N, "  missing += [k for pair in OPTIONAL_PAIRS if semi and any(p in arrays for p in pair)\n              for k in pair if k not in arrays]\n", "", T),
 ('img_hidden_files', I, "return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith('.')", "return name.lower().endswith(IMAGE_EXTENSIONS)", T),
 ('img_gray_any', I, "return 'L' if modes and all(m in GRAY_MODES for m in modes) else 'RGB'", "return 'L' if modes and any(m in GRAY_MODES for m in modes) else 'RGB'", T),
 ('img_16bit_clip', I, "  if img.mode in _SIXTEEN_BIT_MODES:", "  if False:", T),
 ('img_no_exif', I, "    return conform(ImageOps.exif_transpose(img), size, mode)", "    return conform(img, size, mode)", T),
 ('img_exif_size', I, "      if img.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSED_ORIENTATIONS:\n", "      if False:\n", T),
]
