#!/usr/bin/env bash
# Remake the README's pictures in docs/ with nnlab's own commands.
# Uses full Fashion-MNIST (apt-get install dataset-fashion-mnist) when it is installed,
# else the bundled MNIST sample. Takes a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export NNLAB_RUNS="${NNLAB_RUNS:-$(mktemp -d)/runs}"
data=mnist-sample
[ -d /usr/share/datasets/fashion-mnist ] && data=fashion-mnist
echo "runs in $NNLAB_RUNS, dataset $data" >&2

# beta-VAE, beta = 1 against beta = 10 (same seed, same data): class densities over one epoch
a=$(nnlab train vae --dataset=$data --seed=16 --name=beta1)
b=$(nnlab train vae --preset=vae-beta10 --dataset=$data --seed=16 --name=beta10)
nnlab animate "$a" --compare="$b" --every=8 --dpi=75 --out=docs/vae-beta1-vs-beta10.gif
# the numbers behind it, and what the decoder makes of the latent space
cp "$(nnlab summary "$b" --plot)" docs/metrics-vae-beta10.png
nnlab summary "$a" > docs/summary-vae-beta1.txt
nnlab summary "$b" > docs/summary-vae-beta10.txt
manifold=$(nnlab decode "$a" --out="$NNLAB_RUNS/decode" | head -1)
cp "$manifold" docs/vae-manifold.png

# the 3-node hidden layer of a 784-10-3-10 classifier, pushing classes to cube corners
c=$(nnlab train classifier --preset=latent3 --dataset=$data --epochs=20)
nnlab animate "$c" --every=2 --dpi=60 --out=docs/latent3-cube.gif
nnlab summary "$c" > docs/summary-latent3.txt

# weights as masks: a network with no hidden layer
m=$(nnlab train classifier --preset=linear-mse --dataset=$data)
mkdir -p docs/masks && rm -f docs/masks/*
for f in $(nnlab masks "$m" --out=docs/masks); do mv "$f" "docs/masks/masks.${f##*.}"; done
ls -la docs >&2
