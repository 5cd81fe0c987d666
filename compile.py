"""Compile the pipeline to its IR YAML.

    python compile.py [--output pipeline.yaml] [--image IMAGE] [--gpu-image IMAGE] [--models awe,bert]
                      [--resources resources.yaml]
"""

import argparse

from components.ops import DEFAULT_IMAGE
from pipelines.compile_pipeline import compile_pipeline
from pipelines.pipeline import DEFAULT_MODELS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="pipeline.yaml")
    parser.add_argument("--image", default=DEFAULT_IMAGE,
                        help="container image every component runs in, e.g. "
                             "REGION-docker.pkg.dev/PROJECT/REPO/textclf:TAG")
    parser.add_argument("--gpu-image", default="", help="image for the steps given an accelerator "
                                                        "(built with the GPU build argument; default: --image)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="architectures, comma-separated")
    parser.add_argument("--resources", default="", help="YAML/JSON machines and accelerators per step "
                                                        "(pipelines/resources.py), over the Vertex defaults")
    args = parser.parse_args(argv)
    from pipelines.arguments import load_config
    from pipelines.resources import validate
    resources = validate(load_config(args.resources, top_level=False)) if args.resources else None
    print(compile_pipeline(args.output, args.image, args.models.split(","), resources, args.gpu_image))


if __name__ == "__main__":
    main()
