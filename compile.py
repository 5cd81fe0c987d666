"""Compile the pipeline to its IR YAML: `python compile.py [--output pipeline.yaml] [--image IMAGE]`."""

import argparse

from components.ops import DEFAULT_IMAGE
from pipelines.compile_pipeline import compile_pipeline


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default="pipeline.yaml")
    parser.add_argument("--image", default=DEFAULT_IMAGE,
                        help="container image every component runs in, e.g. "
                             "REGION-docker.pkg.dev/PROJECT/REPO/textclf:TAG")
    args = parser.parse_args(argv)
    print(compile_pipeline(args.output, args.image))


if __name__ == "__main__":
    main()
