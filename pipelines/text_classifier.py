"""The text-classifier pipeline: wiring only.

ingest → (per architecture, in parallel) preprocess → train → evaluate → export → quantize →
TFLite evaluation → latency benchmark → report over all architectures → optional publish.
"""


from typing import List

from kfp import dsl

from components.ops import DEFAULT_IMAGE, make_ops

PIPELINE_NAME = "textclf-text-classifier"
SST2_ZIP = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
DEFAULTS = {
    "train": f"{SST2_ZIP}#SST-2/train.tsv",
    "validation": f"{SST2_ZIP}#SST-2/dev.tsv",
    "test": "",
    "csv_params": {"text_column": "auto", "label_column": "label", "delimiter": "auto"},
}


def build_pipeline(image: str = DEFAULT_IMAGE):
    """The pipeline function with every component running in `image`."""
    ops = make_ops(image)

    @dsl.pipeline(name=PIPELINE_NAME,
                  description="Model Maker's text classifier (AWE and BERT) as a reproducible pipeline")
    def text_classifier(
        train: str = DEFAULTS["train"],
        validation: str = DEFAULTS["validation"],
        test: str = DEFAULTS["test"],
        csv_params: dict = DEFAULTS["csv_params"],
        split_options: dict = {},
        models: List[str] = ["awe", "bert"],
        awe_model_options: dict = {},
        awe_hparams: dict = {},
        bert_model_options: dict = {},
        bert_hparams: dict = {},
        quantization: dict = {"mode": "dynamic"},
        beam_pipeline_args: List[str] = [],
        max_accuracy_drop: float = 1.0,
        min_accuracy: float = 0.0,
        benchmark_runs: int = 200,
        export_dir: str = "",
        checkpoint_root: str = "",
        cache_salt: str = "",
    ):
        ingest = ops.ingest_split(train=train, validation=validation, test=test, csv_params=csv_params,
                                  split_options=split_options, cache_salt=cache_salt)
        ingest.set_display_name("ingest-and-split")

        with dsl.ParallelFor(models, name="architectures") as architecture:
            prep = ops.preprocess(architecture=architecture, awe_model_options=awe_model_options,
                                  bert_model_options=bert_model_options, beam_pipeline_args=beam_pipeline_args,
                                  cache_salt=cache_salt, train_data=ingest.outputs["train_data"],
                                  validation_data=ingest.outputs["validation_data"],
                                  test_data=ingest.outputs["test_data"])
            prep.set_display_name("preprocess-beam")

            trained = ops.train(architecture=architecture, awe_model_options=awe_model_options,
                                awe_hparams=awe_hparams, bert_model_options=bert_model_options,
                                bert_hparams=bert_hparams, checkpoint_root=checkpoint_root,
                                cache_salt=cache_salt, train_tokens=prep.outputs["train_tokens"],
                                validation_tokens=prep.outputs["validation_tokens"], vocab=prep.outputs["vocab"])
            trained.set_display_name("train")

            evaluated = ops.evaluate(cache_salt=cache_salt, model=trained.outputs["model"],
                                     test_tokens=prep.outputs["test_tokens"])
            evaluated.set_display_name("evaluate")

            exported = ops.export(cache_salt=cache_salt, model=trained.outputs["model"],
                                  vocab=prep.outputs["vocab"])
            exported.set_display_name("export-tflite")

            quantized = ops.quantize(quantization=quantization, cache_salt=cache_salt,
                                     exported=exported.outputs["exported"], train_tokens=prep.outputs["train_tokens"])
            quantized.set_display_name("quantize")

            checked = ops.tflite_evaluate(max_accuracy_drop=max_accuracy_drop, cache_salt=cache_salt,
                                          exported=exported.outputs["exported"],
                                          quantized=quantized.outputs["quantized"],
                                          test_tokens=prep.outputs["test_tokens"])
            checked.set_display_name("tflite-evaluate")

            timed = ops.benchmark(runs=benchmark_runs, cache_salt=cache_salt,
                                  exported=exported.outputs["exported"], quantized=quantized.outputs["quantized"],
                                  test_tokens=prep.outputs["test_tokens"])
            timed.set_display_name("latency-benchmark")
            timed.set_caching_options(False)  # a measurement: always taken fresh

        reported = ops.report(min_accuracy=min_accuracy, cache_salt=cache_salt,
                              profile=ingest.outputs["profile"],
                              models=dsl.Collected(trained.outputs["model"]),
                              evaluations=dsl.Collected(evaluated.outputs["evaluation"]),
                              exports=dsl.Collected(exported.outputs["exported"]),
                              quantized_models=dsl.Collected(quantized.outputs["quantized"]),
                              tflite_evaluations=dsl.Collected(checked.outputs["tflite_evaluation"]),
                              latencies=dsl.Collected(timed.outputs["latency"]))
        reported.set_display_name("report")
        reported.set_caching_options(False)

        with dsl.If(export_dir != "", name="export-dir-given"):
            published = ops.publish(export_dir=export_dir, deliverables=reported.outputs["deliverables"])
            published.set_display_name("publish")
            published.set_caching_options(False)

    return text_classifier
