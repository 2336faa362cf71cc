"""The plain answer to "does introspective learning beat standard training?", generated from the records.

One paragraph: the fair test's verdict when its test seeds have run (issue 28: IL's form chosen on a
validation split, the verdict on fresh seeds with a paired t-test), then each earlier protocol's best
IL setting against standard training and the best teacher-free rival, with the uncertainty in words.
It replaces the text between `<!-- results:answer:begin -->` and `<!-- results:answer:end -->` in each
--update-doc FILE; notebooks 01 and 05 quote it from README.md (tutorials/make_notebooks.py), so the
answer stays true as records land.

Example:
    python benchmarks/answer.py --update-doc README.md
"""

import argparse
import os

import fair_report  # benchmarks/, beside this script
import verdict
from keras_introspect.benchmark import report

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
FAIR = os.path.join(RESULTS, "fair_protocol.jsonl")
# The earlier protocols, whose configurations were chosen on the test split: (records, dataset).
EARLIER = (("formulation_sweep.jsonl", "CIFAR-10"), ("long_protocol.jsonl", "Imagenette"))


# The opener once the fair test has its verdict: it outranks the protocols chosen on the test split.
FAIR_OPENER = {"ahead": "Yes, on the fair test.", "level": "Not measurably, on the fair test.",
               "behind": "No: on the fair test it trails standard training."}


def fair_sentence(records, seeds=fair_report.VERDICT_SEEDS):
    """The fair test's verdict on its test seeds, or where it stands when they have not run.

    Returns:
        `(sentence, outcome)`: outcome "ahead", "behind" or "level" once the paired t-test can be
        computed (`fair_report.plain` words it), else None.
    """
    sentences, comparison = fair_report.readings(records, seeds)
    if comparison is None:
        return (f"The fair test (issue 28: IL's form chosen on a validation split, the verdict on the test split over "
                f"seeds {', '.join(map(str, seeds))} with a paired t-test) is under way, its choices still being made on "
                "validation. Until it reports, the answer rests on the "
                "earlier protocols, whose settings were picked on the test split, which flatters IL."), None
    return ("On the fair test (CIFAR-10, ResNet-20, IL's form chosen on a validation split, the other settings fixed "
            "before its first run, scored on fresh seeds on the test split): "
            + " ".join(sentences) + " For comparison, the earlier protocols, whose settings were picked on the test "
            "split:"), fair_report.outcome(comparison)


def earlier_sentences(directory=RESULTS):
    sentences, outcomes = [], []
    for name, dataset in EARLIER:
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            continue
        for regime, configs in report.grouped(report.load(path)).items():
            result = verdict.answer(configs, f"on {dataset} ({regime})")
            if result:
                sentences.append(result[0][0].upper() + result[0][1:])
                outcomes.append(result[1])
    return sentences, outcomes


def paragraph(directory=RESULTS):
    """The answer, as Markdown."""
    sentences, outcomes = earlier_sentences(directory)
    fair = os.path.join(directory, os.path.basename(FAIR))
    fair_text, fair_outcome = fair_sentence(report.load(fair)) if os.path.exists(fair) else (None, None)
    if fair_outcome:
        opener = FAIR_OPENER[fair_outcome]
    elif outcomes and all(o == "ahead" for o in outcomes):
        opener = "Yes, on every protocol measured so far."
    elif any(o == "ahead" for o in outcomes):
        opener = "On some protocols and not on others."
    else:
        opener = "Not in any measurement so far."
    return " ".join([f"**Does IL beat standard training?** {opener}"] + ([fair_text] if fair_text else []) + sentences)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update-doc", action="append", default=[], metavar="FILE")
    args = parser.parse_args(argv)
    text = paragraph()
    print(text)
    for doc in args.update_doc:
        report.update_doc(doc, "answer", text)


if __name__ == "__main__":
    main()
