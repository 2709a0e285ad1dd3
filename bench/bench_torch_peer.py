"""The Mean Teacher CNN-13 training step in PyTorch, for a side-by-side with bench/bench.py.

  python bench/bench_torch_peer.py [--width 1.0] [--batch-size 100] [--labeled-batch-size 10]
      [--steps 20] [--warmup 3] [--json out.json]

USB (`semilearn`) would be the natural peer, but it has no CNN-13 and pins its own torch, so this is
a plain PyTorch version of the reference step (Laine & Aila 2017 / Tarvainen & Valpola 2017), built
to do the same work as our `mean_teacher` step:
  * CNN-13: conv3x3 128 x3, maxpool, dropout .5, conv3x3 256 x3, maxpool, dropout .5,
    conv3x3 512 valid, conv1x1 256, conv1x1 128, each conv -> BatchNorm -> LeakyReLU(0.1),
    global average pool, linear; channels scaled by --width exactly as alc_jax/models/cnn13.py;
  * on-device input pipeline: uint8 -> normalise, then two independent augmentations (per-example
    random translation by up to 2 pixels with reflect padding, Gaussian noise 0.15) for the student
    and the EMA teacher;
  * loss: cross-entropy on the labeled rows + w1 * softmax-MSE consistency / K, SGD Nesterov
    (momentum .9, weight decay 2e-4), then the EMA teacher update (alpha .97); the teacher's
    forward runs in train mode (its own BN batch statistics), as in the reference.
A few random uint8 batches are made up front and reused: the input pipeline is not timed.
images/s = batch / median step time after warm-up. torch threads = the cores this process may use
(os.sched_getaffinity), as many as alc_jax's CPU set-up makes JAX devices.
"""

import argparse
import copy
import json
import os
import platform
import statistics
import time

import torch
from torch import nn
import torch.nn.functional as F


def scale(channels, width):
  return max(1, int(round(channels * width)))


def conv_bn(cin, cout, kernel, padding):
  return [nn.Conv2d(cin, cout, kernel, padding=padding, bias=False),
          nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01), nn.LeakyReLU(0.1)]


class CNN13(nn.Module):

  def __init__(self, num_classes=10, width=1.0, dropout=0.5):
    super().__init__()
    c128, c256, c512 = scale(128, width), scale(256, width), scale(512, width)
    layers = conv_bn(3, c128, 3, 1) + conv_bn(c128, c128, 3, 1) + conv_bn(c128, c128, 3, 1)
    layers += [nn.MaxPool2d(2, 2), nn.Dropout(dropout)]
    layers += conv_bn(c128, c256, 3, 1) + conv_bn(c256, c256, 3, 1) + conv_bn(c256, c256, 3, 1)
    layers += [nn.MaxPool2d(2, 2), nn.Dropout(dropout)]
    layers += conv_bn(c256, c512, 3, 0) + conv_bn(c512, c256, 1, 0) + conv_bn(c256, c128, 1, 0)
    self.features = nn.Sequential(*layers)
    self.head = nn.Linear(c128, num_classes)

  def forward(self, x):
    return self.head(self.features(x).mean(dim=(2, 3)))


def augment(x, translate=2, noise_std=0.15):
  """Per-example random translation (reflect padding) and Gaussian noise, on NCHW floats."""
  n, _, h, w = x.shape
  padded = F.pad(x, (translate,) * 4, mode='reflect')
  dy = torch.randint(0, 2 * translate + 1, (n, 1), device=x.device)
  dx = torch.randint(0, 2 * translate + 1, (n, 1), device=x.device)
  rows = (torch.arange(h, device=x.device)[None] + dy)[:, None, :, None]  # (n, 1, h, 1)
  cols = (torch.arange(w, device=x.device)[None] + dx)[:, None, None, :]  # (n, 1, 1, w)
  batch = torch.arange(n, device=x.device)[:, None, None, None]
  chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
  return padded[batch, chans, rows, cols] + noise_std * torch.randn_like(x)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--width', type=float, default=1.0)
  parser.add_argument('--batch-size', type=int, default=100)
  parser.add_argument('--labeled-batch-size', type=int, default=10)
  parser.add_argument('--steps', type=int, default=20)
  parser.add_argument('--warmup', type=int, default=3)
  parser.add_argument('--json', default='')
  args = parser.parse_args()

  try:
    import semilearn  # pylint: disable=import-outside-toplevel,unused-import
    peer = f'semilearn {getattr(semilearn, "__version__", "?")} found, but it has no CNN-13: '
  except ImportError:
    peer = 'semilearn not installed: '
  peer += 'plain PyTorch reference step'
  device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
  torch.set_num_threads(len(os.sched_getaffinity(0)))  # All cores, as the JAX CPU set-up uses.
  torch.backends.cudnn.benchmark = True
  torch.manual_seed(0)
  device_name = torch.cuda.get_device_name() if device.type == 'cuda' else (
      platform.processor() or platform.machine())
  print(f'peer: {peer}; torch {torch.__version__} on {device_name}, '
        f'{torch.get_num_threads()} threads (= cores)', flush=True)

  student = CNN13(width=args.width).to(device)
  teacher = copy.deepcopy(student)
  for p in teacher.parameters():
    p.requires_grad_(False)
  opt = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                        weight_decay=2e-4)
  b, lb, alpha, w1 = args.batch_size, args.labeled_batch_size, 0.97, 5.0
  mean = torch.tensor([0.5, 0.5, 0.5], device=device).view(1, 3, 1, 1)
  std = torch.tensor([0.25, 0.25, 0.25], device=device).view(1, 3, 1, 1)
  batches = [(torch.randint(0, 256, (b, 3, 32, 32), dtype=torch.uint8, device=device),
              torch.where(torch.arange(b, device=device) < lb,
                          torch.randint(0, 10, (b,), device=device), -1)) for _ in range(4)]
  s_params, t_params = list(student.parameters()), list(teacher.parameters())

  def step(images, labels):
    x = (images.float() / 255.0 - mean) / std
    logits = student(augment(x))
    with torch.no_grad():
      teacher_logits = teacher(augment(x))
    ce = F.cross_entropy(logits, labels, ignore_index=-1)
    consistency = ((F.softmax(logits, 1) - F.softmax(teacher_logits, 1)) ** 2).sum(1).mean() / 10
    loss = ce + w1 * consistency
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():  # EMA teacher (Eq. 2): one fused update over all parameters.
      torch._foreach_mul_(t_params, alpha)  # pylint: disable=protected-access
      torch._foreach_add_(t_params, s_params, alpha=1 - alpha)  # pylint: disable=protected-access
    return loss

  student.train()
  teacher.train()
  times = []
  for i in range(args.warmup + args.steps):
    if device.type == 'cuda':
      torch.cuda.synchronize()
    start = time.perf_counter()
    loss = step(*batches[i % len(batches)])
    loss.item()  # Waits for the step (and synchronises CUDA).
    if i >= args.warmup:
      times.append(time.perf_counter() - start)
  step_s = statistics.median(times)
  out = {'images_per_second': b / step_s, 'ms_per_step': 1e3 * step_s, 'step_times_s': times,
         'width': args.width, 'batch_size': b, 'threads': torch.get_num_threads(),
         'torch': torch.__version__, 'device': device_name, 'implementation': peer,
         'load1': os.getloadavg()[0]}
  print(f'peer MT CNN-13 width {args.width:g} batch {b}: {out["images_per_second"]:.1f} img/s, '
        f'{out["ms_per_step"]:.1f} ms/step (median of {args.steps} after {args.warmup} warm-up; '
        f'load average {out["load1"]:.1f})',
        flush=True)
  if args.json:
    with open(args.json, 'w', encoding='utf-8') as f:
      json.dump(out, f, indent=1)


if __name__ == '__main__':
  main()
