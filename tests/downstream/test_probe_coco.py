"""The COCO instances source, on a tiny instances JSON and two small PNG images."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as coco_mask

from downstream.coco_source import CocoObjects
from downstream.matched_slots import extract_matched_slots
from downstream.probe import main
from ocl.modeling import SmoothSAModel
from tasks.bad_input import BadInputError
from tests.ocl.tiny import tiny_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "probe"


def compressed_rle(mask: np.ndarray) -> dict:
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(x) for x in encoded["size"]], "counts": encoded["counts"].decode()}


@pytest.fixture
def coco(tmp_path):
    """Image 1 (10x12): a polygon "cat", an RLE "dog", a crowd "dog"; image 2 (8x8): none."""
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.full((10, 12, 3), 200, dtype=np.uint8)).save(images / "one.png")
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(images / "two.png")
    dog = np.zeros((10, 12), dtype=bool)
    dog[6:9, 1:5] = True
    content = {
        "images": [{"id": 5, "file_name": "one.png", "height": 10, "width": 12},
                   {"id": 9, "file_name": "two.png", "height": 8, "width": 8}],
        "categories": [{"id": 18, "name": "dog"}, {"id": 3, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 5, "category_id": 3, "iscrowd": 0, "bbox": [6, 1, 4, 3],
             "area": 12, "segmentation": [[6, 1, 10, 1, 10, 4, 6, 4]]},
            {"id": 2, "image_id": 5, "category_id": 18, "iscrowd": 0, "bbox": [1, 6, 4, 3],
             "area": 12, "segmentation": compressed_rle(dog)},
            {"id": 3, "image_id": 5, "category_id": 18, "iscrowd": 1, "bbox": [0, 0, 2, 2],
             "area": 4, "segmentation": compressed_rle(np.eye(10, 12, dtype=bool))},
        ],
    }
    annotation_file = tmp_path / "instances.json"
    annotation_file.write_text(json.dumps(content))
    return annotation_file, images, dog


def test_images_instances_and_classes(coco):
    annotation_file, images, dog = coco
    source = CocoObjects(annotation_file, images)
    assert len(source) == 2 and source.sample_ids == [5, 9]
    assert source.attribute_specs[0].values == ("cat", "dog")  # by category id: 3, then 18
    first = source[0]
    assert first.sample_id == 5
    assert first.frames.shape == (1, 3, 10, 12) and (first.frames == 200).all()
    assert first.object_masks.shape == (1, 2, 10, 12)  # the crowd instance is left out
    assert first.attributes["class"].tolist() == [[0, 1]]
    cat = first.object_masks[0, 0]
    assert cat[1:4, 6:10].all() and cat.sum() >= 12  # polygon rasterised over its 4x3 box
    assert torch.equal(first.object_masks[0, 1], torch.from_numpy(dog))
    second = source[1]
    assert second.object_masks.shape == (1, 0, 8, 8) and second.attributes["class"].shape == (1, 0)
    assert CocoObjects(annotation_file, images, include_crowd=True)[0].num_objects == 3
    assert len(CocoObjects(annotation_file, images, max_images=1)) == 1


def test_matching_on_coco_images(coco):
    annotation_file, images, _ = coco
    torch.manual_seed(0)
    encoder = SmoothSAModel(tiny_config(video=False)).eval()
    matched = extract_matched_slots(encoder, CocoObjects(annotation_file, images))
    assert matched.num_objects == 2
    assert matched.num_matched <= 2 and set(matched.sample_id.tolist()) <= {5}
    assert matched.attributes["class"].shape == (matched.num_matched,)


def test_probe_table_on_coco(coco, tmp_path, capsys):
    annotation_file, images, _ = coco
    torch.manual_seed(0)
    SmoothSAModel(tiny_config(video=False)).save_pretrained(tmp_path / "encoder")
    columns = main([
        "--config", str(CONFIGS / "tiny.yaml"), "data.source=coco", "class_attribute=class",
        f"data.coco_train_annotations={annotation_file}", f"data.coco_train_images={images}",
        f"data.coco_evaluation_annotations={annotation_file}",
        f"data.coco_evaluation_images={images}", "matching.threshold=0",
        f"output_dir={tmp_path / 'out'}",
        f"encoders=[{{name: image, path: {tmp_path / 'encoder'}}}]",
    ])
    assert columns["image"]["objects"] == 2 and columns["image"]["matched"] >= 1
    assert "class/linear/accuracy" in columns["image"]
    assert "official/top1" in capsys.readouterr().out


def test_bad_coco_input_names_the_file(coco, tmp_path):
    annotation_file, images, _ = coco
    (images / "two.png").unlink()
    source = CocoObjects(annotation_file, images)
    with pytest.raises(BadInputError, match="two.png"):
        source[1]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"images": []}))
    with pytest.raises(BadInputError, match="broken.json.*annotations"):
        CocoObjects(broken, images)
