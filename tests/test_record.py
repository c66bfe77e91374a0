"""The checked network as written (resdsl/record.py): parts, block instances and the ops each made."""

from __future__ import annotations

import pytest

import resdsl

SMALL = (3, 64, 64)


def test_resnet50_as_written():
    net = resdsl.load("resnet50", input_shape=SMALL)
    record = net.record
    assert [p.name for p in record.parts] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert [p.description for p in record.parts] == [
        "",
        "bottleneck ×3",
        "bottleneck ×4 /2",
        "bottleneck ×6 /2",
        "bottleneck ×3 /2",
        "",
    ]
    assert [e.name for e in record.events][:5] == ["conv1", "bn1", "relu", "maxpool", "layer1.0"]
    block = record.blocks["layer2.0"]
    assert block.instance.arguments["planes"] == 128 and block.instance.arguments["stride"] == 2
    assert [e.name for e in block.events] == [
        f"layer2.0.{n}" for n in ("conv1", "bn1", "relu", "conv2", "bn2", "relu2", "conv3", "bn3", "add", "relu3")
    ]
    assert record.shortcuts["layer2.0.downsample"] == ("layer2.0.downsample.0", "layer2.0.downsample.1")
    assert block.in_shape == (256, 16, 16) and block.out_shape == (512, 8, 8)
    # a block's cost is its ops' and its inserted shortcut's; a stage's is its blocks'
    assert block.params == sum(net.ops.nodes[n].params for n in net.ops.nodes if n.startswith("layer2.0."))
    layer2 = next(p for p in record.parts if p.name == "layer2")
    assert [b.path for b in layer2.blocks] == [f"layer2.{i}" for i in range(4)]
    assert layer2.params == sum(b.params for b in layer2.blocks)
    assert len(record.uses(block.instance.template)) == 16


@pytest.mark.parametrize("name", ["skresnet18", "res2net50_26w_4s", "resnetv2_50d_evos", "densenet_cifar"])
def test_every_op_is_made_by_exactly_one_body(name):
    net = resdsl.load(name, input_shape=SMALL if name != "densenet_cifar" else None)
    record = net.record
    made = [e.name for e in record.events if e.node is not None]
    for block in record.blocks.values():
        made += [e.name for e in block.events if e.node is not None]
        children = [e.block for e in block.events if e.block is not None]
        assert all(child.instance.parent == block.path for child in children)
    inserted = [n for n, node in net.ops.nodes.items() if node.inserted]
    assert sorted(made + inserted) == sorted(n for n in net.ops.nodes if n != "input")


def test_a_nested_call_is_an_event_of_the_block_that_makes_it():
    record = resdsl.load("skresnet18", input_shape=SMALL).record
    outer = record.blocks["layer1.0"]
    inner = outer.events[0].block
    assert inner is not None and inner.path == "layer1.0.conv1" and inner.instance.template.name == "selective_kernel"
    assert [e.name for e in inner.events][:3] == [
        "layer1.0.conv1.chunk",
        "layer1.0.conv1.paths.0.conv",
        "layer1.0.conv1.paths.0.bn",
    ]
    assert next(p for p in record.parts if p.name == "layer1").blocks == (outer, record.blocks["layer1.1"])


def test_a_block_that_makes_nothing_is_the_identity():
    net = resdsl.loads("block nothing() { }\nnetwork n {\n input 3x8x8\n conv 8 k3\n a: nothing()\n avgpool -> fc 4\n}")
    block = net.record.blocks["a"]
    assert block.events == () and block.output is None and block.in_shape is None
