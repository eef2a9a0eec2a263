#!/usr/bin/env bash
# Remake the README's pictures in docs/ with nnlab's own commands.
# Uses full Fashion-MNIST (apt-get install dataset-fashion-mnist) when it is installed,
# else the bundled MNIST sample. Takes about ten minutes on 2 cores.
#   docs/make_figures.sh              every picture
#   docs/make_figures.sh vae sweep    some of them (vae, conv, cube, masks, sweep, search,
#                                     own, regularisation, report, layers, serve)
# regularisation (the bundled sample, ~15 minutes), search (the bundled sample, ~5 minutes)
# report, serve (both need playwright and Chromium) and layers also rewrite their
# measured tables.
set -euo pipefail
cd "$(dirname "$0")/.."
export NNLAB_RUNS="${NNLAB_RUNS:-$(mktemp -d)/runs}"
data=mnist-sample
[ -d /usr/share/datasets/fashion-mnist ] && data=fashion-mnist
echo "runs in $NNLAB_RUNS, dataset $data" >&2

sections="${*:-vae conv cube masks sweep search own regularisation report layers serve}"
want() { [[ " $sections " == *" $1 "* ]]; }

# beta-VAE, beta = 1 against beta = 10 (same seed, same data): class densities over one epoch
if want vae; then
a=$(nnlab train vae --dataset=$data --seed=16 --name=beta1)
b=$(nnlab train vae --preset=vae-beta10 --dataset=$data --seed=16 --name=beta10)
nnlab animate "$a" --compare="$b" --every=8 --dpi=75 --out=docs/vae-beta1-vs-beta10.gif
# the numbers behind it, and what the decoder makes of the latent space
cp "$(nnlab summary "$b" --plot)" docs/metrics-vae-beta10.png
python -c "import sys; from nnlab.render.metrics import panel_titles; print(*panel_titles(sys.argv[1]), sep='\n')" \
  "$b" > docs/metrics-vae-beta10.panels.txt  # what it shows: tests/test_render_metrics.py compares
nnlab summary "$a" > docs/summary-vae-beta1.txt
nnlab summary "$b" > docs/summary-vae-beta10.txt
manifold=$(nnlab decode "$a" --out="$NNLAB_RUNS/decode" | head -1)
cp "$manifold" docs/vae-manifold.png
fi

# the convolutional VAE (conv-vae preset, 2-D latent), one epoch, and its decoded manifold
if want conv; then
v=$(nnlab train vae --preset=conv-vae --dataset=$data --seed=16 --name=conv)
nnlab animate "$v" --every=2 --dpi=75 --out=docs/conv-vae.gif
nnlab summary "$v" > docs/summary-conv-vae.txt
manifold=$(nnlab decode "$v" --out="$NNLAB_RUNS/decode-conv" | head -1)
cp "$manifold" docs/conv-vae-manifold.png
fi

# the 3-node hidden layer of a 784-10-3-10 classifier, pushing classes to cube corners
if want cube; then
c=$(nnlab train classifier --preset=latent3 --dataset=$data --epochs=20)
nnlab animate "$c" --every=2 --dpi=60 --out=docs/latent3-cube.gif
nnlab summary "$c" > docs/summary-latent3.txt
fi

# weights as masks: a network with no hidden layer
if want masks; then
m=$(nnlab train classifier --preset=linear-mse --dataset=$data)
mkdir -p docs/masks && rm -f docs/masks/*
for f in $(nnlab masks "$m" --out=docs/masks); do mv "$f" "docs/masks/masks.${f##*.}"; done
fi

# a sweep: beta in {0.5, 1, 2, 4, 10} x 3 seeds of the reference VAE, its table and plot, and
# the latent space of seed 0 at each beta side by side
if want sweep; then
s=$(nnlab sweep vae --dataset=$data --beta=0.5,1,2,4,10 --seed=0,1,2 --snapshot_every=40 \
  --name=beta)
nnlab summary "$s" > docs/summary-sweep-beta.txt
cp "$(nnlab summary "$s" --plot)" docs/sweep-beta.png
nnlab animate "$s-p00" --compare="$s-p03,$s-p06,$s-p09,$s-p12" --every=2 --dpi=50 \
  --out=docs/sweep-beta-latents.gif
fi
# a 7 x 7 grid against TPE searches with ASHA pruning (benchmarks/search.py): the table, and
# the first search's summary and plot
if want search; then
python benchmarks/search.py --write-docs
fi
# a convolutional VAE written the plain PyTorch way, recorded through nnlab's Python API
if want own; then
o=$(python examples/own_loop.py)
nnlab animate "$o" --dpi=60 --out=docs/own-conv-vae.gif
fi

# L1 against L2 masks, dropout's train/test gap, and plasticity on Permuted MNIST
if want regularisation; then
python docs/regularisation.py all --write-readme
fi

# every layer over training: the collapse run's pictures, and the measured table (needs
# Fashion-MNIST; about 6 minutes)
if want layers; then
python benchmarks/layers.py --write-docs --figures > /dev/null
fi

# nnlab serve measured in headless Chromium (live latency, first paint, 50 clients), and
# its screenshots (needs playwright and Chromium; about 3 minutes)
if want serve; then
python benchmarks/serve.py --write-docs --figures > /dev/null
fi

# the report page of the reference run, measured in headless Chromium, and its screenshot
if want report; then
python docs/report_figures.py ${a:-} --write-readme
fi
ls -la docs >&2
