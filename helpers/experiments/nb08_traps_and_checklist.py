"""Notebook 08, part 1: synthetic support messages with planted problems, and the checks that find them.

A year of messages to a support desk, each routed to one of five queues. The generator plants what goes
wrong in real routing data: incident bursts of near-copies routed to an owner the text does not reveal,
drift (the app's share grows, shipping surges, new words appear), one segment labelled systematically
wrong, and noisy phone transcripts. Every message can be printed as text.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from helpers.exercises import NOT_ATTEMPTED
from helpers.scratch import confident_learning, word_vectors
from helpers.validation import check_choice, check_float, check_int

QUEUES = ("billing", "refund", "shipping", "technical", "account")
CHANNELS = ("email", "chat", "phone")
PRODUCTS = ("web", "app")
DAYS, TRAIN_END, VALIDATION_END = 360, 240, 300
TOPIC_WORDS = {
    "billing": "charge charged invoice bill payment card twice fee subscription price receipt overcharged "
               "tax plan renewal discount amount statement premium debit",
    "refund": "refund return money back reimburse returned damaged faulty unwanted credit dispute broken "
              "exchange policy warranty defective undo reversed claim compensation",
    "shipping": "package delivery shipped tracking courier late arrived parcel address lost box carrier "
                "dispatch postcode doorstep signed neighbour warehouse delayed label",
    "technical": "crash error bug freeze loading slow screen blank timeout glitch button page "
                 "spinner offline server font layout browser version lag",
    "account": "password login email username locked profile verify reset delete security signin hacked "
               "recovery name phone avatar privacy logout session identity",
}
# A word whose meaning depends on the product: "code" is a promo code on the web and a sign-in code in the app.
PRODUCT_WORDS = {"code": ("billing", "account"), "sync": ("account", "technical"), "update": ("billing", "technical"),
                 "link": ("account", "shipping"), "notification": ("shipping", "account"),
                 "store": ("shipping", "refund"), "download": ("billing", "technical"),
                 "order": ("shipping", "refund"), "cancel": ("refund", "billing"), "settings": ("technical", "billing"),
                 "item": ("refund", "shipping")}
NEW_WORDS = {"billing": "wallet paylater", "refund": "storecredit giftcard", "shipping": "locker pickup",
             "technical": "widget darkmode", "account": "passkey twofactor"}
FILLER = ("hi hello please help thanks urgent today again still need problem question my the i not working why "
          "when can you this it is was yesterday asap sorry hey team any update? just me we our").split()
NEIGHBOUR = {"billing": "refund", "refund": "billing", "shipping": "refund", "technical": "account",
             "account": "technical"}
NEW_WORDS_FROM = 220


def _vocabulary() -> tuple[list[str], dict[str, int]]:
    words: list[str] = []
    for text in [*TOPIC_WORDS.values(), " ".join(PRODUCT_WORDS), *NEW_WORDS.values(), " ".join(FILLER)]:
        words += [w for w in text.split() if w not in words]
    return words, {w: i for i, w in enumerate(words)}


WORDS, WORD_INDEX = _vocabulary()


@dataclass(frozen=True)
class Messages:
    """A stream of support messages, sorted by time; ``words`` holds word ids padded with -1."""

    words: np.ndarray        # (n, max_words) int
    day: np.ndarray          # (n,) float, 0 to 360
    product: np.ndarray      # (n,) index into PRODUCTS
    channel: np.ndarray      # (n,) index into CHANNELS
    true_queue: np.ndarray   # (n,) the queue that should handle it
    given_queue: np.ndarray  # (n,) the label in the records (systematic errors planted)
    burst: np.ndarray        # (n,) incident id, -1 for an ordinary message
    vocabulary: tuple[str, ...]  # WORDS, then one error code per incident

    def __len__(self) -> int:
        return len(self.day)

    def text(self, i: int) -> str:
        """One message as a line of text with its metadata."""
        words = " ".join(self.vocabulary[w] for w in self.words[i] if w >= 0)
        return (f"day {self.day[i]:5.1f} | {CHANNELS[self.channel[i]]:5} | {PRODUCTS[self.product[i]]:3} | "
                f"labelled {QUEUES[self.given_queue[i]]:9} | {words}")


QUEUE_PRIOR = np.array([0.22, 0.20, 0.20, 0.20, 0.18])
CHANNEL_PRIOR = np.array([0.40, 0.35, 0.25])
TOPIC_TABLE = np.array([[WORD_INDEX[w] for w in TOPIC_WORDS[q].split()] for q in QUEUES])        # (queues, 20)
NEW_TABLE = np.array([[WORD_INDEX[w] for w in NEW_WORDS[q].split()] for q in QUEUES])            # (queues, 2)
PRODUCT_TABLE = np.array([[np.resize([WORD_INDEX[w] for w, meaning in PRODUCT_WORDS.items() if meaning[p] == q], 6)
                           for q in QUEUES] for p in range(len(PRODUCTS))])                      # (products, queues, 6)
FILLER_IDS = np.array([WORD_INDEX[w] for w in FILLER])
TOPIC_SLOTS, FILLER_SLOTS = 4, 4


def _zipf_draw(rng: np.random.Generator, size: tuple[int, ...], count: int) -> np.ndarray:
    """Ranks 0..count-1 drawn with Zipf weights 1/(rank + 1): a few words are common, most are rare."""
    weights = 1.0 / np.arange(1, count + 1)
    return np.searchsorted(np.cumsum(weights / weights.sum()), rng.uniform(size=size)).clip(0, count - 1)


def _compose(rng: np.random.Generator, day: np.ndarray, product: np.ndarray, queue: np.ndarray) -> np.ndarray:
    """Word ids of ordinary messages: topic words, one product-dependent word and a few fillers."""
    n = len(day)
    own = rng.uniform(size=(n, TOPIC_SLOTS)) < 0.75
    neighbour = np.array([QUEUES.index(NEIGHBOUR[q]) for q in QUEUES])[queue]
    source = np.where(own, queue[:, None], neighbour[:, None])                                 # (n, topic slots)
    topic = TOPIC_TABLE[source, _zipf_draw(rng, (n, TOPIC_SLOTS), TOPIC_TABLE.shape[1])]
    new_share = 0.8 * np.clip((day - NEW_WORDS_FROM) / (DAYS - NEW_WORDS_FROM), 0.0, 1.0)
    renamed = rng.uniform(size=n) < new_share                                                  # drift: new words
    topic[:, 0] = np.where(renamed, NEW_TABLE[queue, rng.integers(0, 2, n)], topic[:, 0])
    product_word = PRODUCT_TABLE[product, queue, rng.integers(0, 6, n)][:, None]
    filler = FILLER_IDS[_zipf_draw(rng, (n, FILLER_SLOTS), len(FILLER_IDS))]
    filler[rng.uniform(size=(n, FILLER_SLOTS)) < 0.35] = -1
    return rng.permuted(np.concatenate([topic, product_word, filler], axis=1), axis=1)


def _mishear(rng: np.random.Generator, words: np.ndarray, phone: np.ndarray, error_rate: float) -> np.ndarray:
    """Phone transcripts: each word of a phone message becomes a random word with probability ``error_rate``."""
    misheard = (rng.uniform(size=words.shape) < error_rate) & phone[:, None] & (words >= 0)
    return np.where(misheard, rng.integers(0, len(WORDS), words.shape), words)


def generate(n: int = 6000, seed: int = 0, burst_share: float = 0.25, copy_fidelity: float = 0.95,
             noise_rate: float = 0.6, transcription_error: float = 0.25) -> Messages:
    """A year of support messages with the planted problems (see the module docstring).

    ``burst_share`` of the messages are near-copies from incidents; each copy keeps each word of its
    incident's message with probability ``copy_fidelity``. Chat messages about refunds are labelled
    billing with probability ``noise_rate``; phone words are misheard with ``transcription_error``.
    """
    check_int("n", n, 500, 100_000)
    check_int("seed", seed, 0, 2**32 - 1)
    check_float("burst_share", burst_share, 0.0, 0.9)
    check_float("copy_fidelity", copy_fidelity, 0.0, 1.0)
    check_float("noise_rate", noise_rate, 0.0, 1.0)
    check_float("transcription_error", transcription_error, 0.0, 1.0)
    rng = np.random.default_rng(seed)
    n_copies = int(round(burst_share * n))
    sizes = rng.integers(8, 25, size=max(1, n_copies // 8))
    sizes = sizes[:np.searchsorted(np.cumsum(sizes), n_copies) + 1]
    sizes[-1] -= sizes.sum() - n_copies                                    # exactly n_copies copies in all
    sizes = sizes[sizes > 0]
    n_incidents, n_ordinary = len(sizes), n - n_copies
    starts = rng.permutation(np.arange(n_incidents) + rng.uniform(size=n_incidents)) * (DAYS - 1) / n_incidents
    day = np.concatenate([rng.uniform(0, DAYS, n_ordinary), starts])        # incidents spread over the year
    product = (rng.uniform(size=len(day)) < 0.2 + 0.6 * day / DAYS).astype(int)   # the app's share grows
    prior = np.where((day >= VALIDATION_END)[:, None], QUEUE_PRIOR * [1, 1, 2.5, 1, 1], QUEUE_PRIOR)
    queue = (rng.uniform(size=(len(day), 1)) > np.cumsum(prior / prior.sum(1, keepdims=True), 1)).sum(1)
    code = np.full((len(day), 1), -1)
    code[n_ordinary:, 0] = len(WORDS) + np.arange(n_incidents)              # each incident's error code
    words = np.concatenate([_compose(rng, day, product, queue), code], axis=1)
    incident = np.repeat(np.arange(n_incidents), sizes)                     # copies of incident k
    template = n_ordinary + incident
    copies = np.where(rng.uniform(size=(n_copies, words.shape[1])) < copy_fidelity, words[template],
                      np.where(words[template] >= 0, rng.choice(FILLER_IDS, (n_copies, words.shape[1])), -1))
    owner = rng.integers(0, len(QUEUES), n_incidents)                      # not revealed by the text
    words = np.concatenate([words[:n_ordinary], copies])
    day = np.concatenate([day[:n_ordinary], day[template] + rng.uniform(0, 1, n_copies)])
    product = np.concatenate([product[:n_ordinary], product[template]])
    true_queue = np.concatenate([queue[:n_ordinary], owner[incident]])
    burst = np.concatenate([np.full(n_ordinary, -1), incident])
    channel = (rng.uniform(size=(n, 1)) > np.cumsum(CHANNEL_PRIOR)).sum(1)
    vocabulary = (*WORDS, *(f"err{k:03d}" for k in range(n_incidents)))
    words = _mishear(rng, words, channel == CHANNELS.index("phone"), transcription_error)
    mislabelled = ((burst < 0) & (channel == CHANNELS.index("chat")) & (true_queue == QUEUES.index("refund"))
                   & (rng.uniform(size=n) < noise_rate))
    given_queue = np.where(mislabelled, QUEUES.index("billing"), true_queue)
    order = np.argsort(day, kind="stable")
    return Messages(words[order], day[order], product[order], channel[order], true_queue[order],
                    given_queue[order], burst[order], vocabulary)


def presence(messages: Messages) -> np.ndarray:
    """(n, vocabulary size) 0/1 matrix: which words each message contains."""
    rows = np.repeat(np.arange(len(messages)), messages.words.shape[1])
    hits = messages.words.ravel() >= 0
    matrix = np.zeros((len(messages), len(messages.vocabulary)), dtype=np.float32)
    matrix[rows[hits], messages.words.ravel()[hits]] = 1.0
    return matrix


def features(messages: Messages, fit_rows: np.ndarray, words_only: bool = False) -> np.ndarray:
    """Bag-of-words features with the vocabulary fitted on ``fit_rows`` only, plus product and channel.

    A word never seen in the fitted rows has no column: a model cannot use what its training data lacked.
    """
    words = presence(messages)
    seen = words[fit_rows].sum(axis=0) > 0
    parts = [words[:, seen]]
    if not words_only:
        parts += [np.eye(len(PRODUCTS), dtype=np.float32)[messages.product],
                  np.eye(len(CHANNELS), dtype=np.float32)[messages.channel]]
    return np.concatenate(parts, axis=1)


SPLITS = ("time", "random", "group")


def split(messages: Messages, kind: str = "time", seed: int = 0) -> dict[str, np.ndarray]:
    """Row indices of train, validation and test. Test is always the future (days 300-360).

    ``time`` trains on days before 240 and validates on days 240-300; ``random`` shuffles days 0-300 and
    holds out a fifth, so copies from one incident land on both sides; ``group`` holds out a fifth of the
    incidents and of the ordinary messages at random, each incident whole, so no incident is on both sides.
    """
    check_choice("kind", kind, SPLITS)
    past = np.flatnonzero(messages.day < VALIDATION_END)
    test = np.flatnonzero(messages.day >= VALIDATION_END)
    if kind == "time":
        train, validation = past[messages.day[past] < TRAIN_END], past[messages.day[past] >= TRAIN_END]
    elif kind == "random":
        shuffled = np.random.default_rng(seed).permutation(past)
        cut = int(round(0.8 * len(past)))
        train, validation = np.sort(shuffled[:cut]), np.sort(shuffled[cut:])
    else:
        group = np.where(messages.burst[past] >= 0, messages.burst[past], messages.burst.max() + 1 + past)
        keys, member = np.unique(group, return_inverse=True)
        held_out = np.random.default_rng(seed).uniform(size=len(keys)) < 0.2
        train, validation = past[~held_out[member]], past[held_out[member]]
    return {"train": train, "validation": validation, "test": test}


def logistic_regression(x: np.ndarray, labels: np.ndarray, strength: float = 1.0):
    """scikit-learn's multinomial logistic regression on sparse features (``strength`` is its C)."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    check_float("strength", strength, 1e-4, 1e4)
    return LogisticRegression(C=strength, max_iter=500, tol=1e-3).fit(sparse.csr_matrix(x), labels)


def cosine_nearest(query: np.ndarray, reference: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """For each row of ``query``, the highest cosine similarity to any row of ``reference``."""
    def unit(rows: np.ndarray) -> np.ndarray:
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)

    query, reference = unit(query), unit(reference)
    if len(reference) == 0:
        return np.zeros(len(query))
    return np.concatenate([(query[i:i + chunk] @ reference.T).max(axis=1) for i in range(0, len(query), chunk)])


TWIN_SIMILARITY = 0.9


@dataclass(frozen=True)
class SplitRun:
    """One split's rows, features, a logistic regression trained on its training rows, and what it measured."""

    kind: str
    rows: dict[str, np.ndarray]
    x: np.ndarray
    model: object
    validation_accuracy: float
    future_accuracy: float
    twin_rate: float

    @property
    def overstatement(self) -> float:
        """How much validation accuracy exceeds accuracy on the future."""
        return self.validation_accuracy - self.future_accuracy


def split_run(messages: Messages, kind: str, seed: int = 0) -> SplitRun:
    """Train logistic regression on one split; validate on its records, test on the future's true queues.

    The twin rate is the share of validation messages with a training message of cosine similarity at
    least ``TWIN_SIMILARITY`` in their words: a near-copy the model may simply have memorised.
    """
    rows = split(messages, kind, seed)
    x = features(messages, rows["train"])
    model = logistic_regression(x[rows["train"]], messages.given_queue[rows["train"]])
    validation = (model.predict(x[rows["validation"]]) == messages.given_queue[rows["validation"]]).mean()
    future = (model.predict(x[rows["test"]]) == messages.true_queue[rows["test"]]).mean()
    words = presence(messages)
    twins = cosine_nearest(words[rows["validation"]], words[rows["train"]]) >= TWIN_SIMILARITY
    return SplitRun(kind, rows, x, model, float(validation), float(future), float(twins.mean()))


def leak_figure(runs: Mapping[str, SplitRun], title: str = "What each split promised, and what the future delivered"):
    """Grouped bars: validation accuracy and accuracy on the future (days 300-360) for each named run."""
    from helpers import plotting

    fig, ax = plotting.figure(title, "how the past was split into training and validation", "accuracy (fraction)",
                              figsize=(max(6.4, 2.4 * len(runs)), 3.8))
    names = list(runs)
    positions = np.arange(len(names))
    for offset, (label, attribute, color) in zip((-0.2, 0.2), (
            ("validation (what we would have reported)", "validation_accuracy", plotting.PALETTE[0]),
            ("future, days 300-360 (what users get)", "future_accuracy", plotting.PALETTE[1]))):
        values = [getattr(runs[name], attribute) for name in names]
        bars = ax.bar(positions + offset, values, 0.4, label=label, color=color)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(positions, [f"{name}\n({runs[name].twin_rate:.0%} near-twins)" for name in names])
    ax.set_ylim(0, 1.15)
    ax.legend(loc="upper center", ncols=2, bbox_to_anchor=(0.5, -0.22))
    return fig


EXPLORER_MESSAGES = 5000


def leak_explorer(burst_share: float = 0.25, copy_fidelity: float = 0.95, split_kind: str = "random",
                  seed: int = 0):
    """Explorer: plant bursts of a given share and fidelity, split the past one way, and compare what
    validation promised with accuracy on the future. Logistic regression, about half a second."""
    check_choice("split_kind", split_kind, SPLITS)
    messages = generate(EXPLORER_MESSAGES, seed, burst_share=burst_share, copy_fidelity=copy_fidelity)
    run = split_run(messages, split_kind, seed)
    fig = leak_figure({f"{split_kind} split": run}, title=f"{split_kind} split: validation vs the future")
    numbers = {"validation accuracy": run.validation_accuracy, "future accuracy": run.future_accuracy,
               "overstatement": run.overstatement, "validation near-twins": run.twin_rate}
    if burst_share == 0:
        numbers["note"] = "No incident bursts planted: any gap left comes from drift alone."
    return fig, numbers


def planted(messages: Messages) -> list[dict]:
    """What the generator planted, measured on the messages themselves."""
    chat_refund = ((messages.channel == CHANNELS.index("chat")) & (messages.true_queue == QUEUES.index("refund"))
                   & (messages.burst < 0))
    mislabelled = messages.given_queue != messages.true_queue
    first, last = messages.day < 30, messages.day >= DAYS - 30
    app = messages.product == PRODUCTS.index("app")
    new = np.isin(messages.words, NEW_TABLE).any(axis=1)
    phone = messages.channel == CHANNELS.index("phone")
    return [
        {"problem": "incident bursts (near-copies; the owner is not in the text)",
         "measured": f"{np.mean(messages.burst >= 0):.0%} of messages, {messages.burst.max() + 1} incidents"},
        {"problem": "systematic label noise",
         "measured": f"{mislabelled.mean():.1%} wrong; {mislabelled[chat_refund].mean():.0%} of chat refunds"},
        {"problem": "drift: the app's share",
         "measured": f"{app[first].mean():.0%} in the first month, {app[last].mean():.0%} in the last"},
        {"problem": "drift: new words (from day 220)",
         "measured": f"in {new[messages.day < NEW_WORDS_FROM].mean():.0%} of messages before, "
                     f"{new[last].mean():.0%} in the last month"},
        {"problem": "noisy phone transcripts",
         "measured": f"{phone.mean():.0%} of messages, about one word in four misheard"},
    ]


@dataclass(frozen=True)
class Audit:
    """Confident learning over the labelled past: out-of-fold probabilities, flags, and how good they are."""

    rows: np.ndarray            # the audited messages (days 0-300)
    probs: np.ndarray           # out-of-fold probabilities from a words-only model
    flagged: np.ndarray         # confident learning's flags
    disagree: np.ndarray        # baseline: every disagreement between prediction and label
    least_confident: np.ndarray  # baseline at an equal budget: the same number of lowest self-confidences
    joint: np.ndarray           # estimated joint of (given, true) queue
    cleaned: np.ndarray         # given labels of every message, confident learning's flags relabelled

    def relabelled(self, messages: Messages, flags: np.ndarray) -> np.ndarray:
        """Given labels of every message, the audited ones in ``flags`` replaced by the model's guess."""
        labels = messages.given_queue.copy()
        labels[self.rows[flags]] = self.probs[flags].argmax(axis=1)
        return labels

    def quality(self, messages: Messages) -> list[dict]:
        """Precision and recall of each method against the planted truth."""
        wrong = messages.given_queue[self.rows] != messages.true_queue[self.rows]
        return [{"method": name, "flagged": int(flags.sum()),
                 "precision": float((flags & wrong).sum() / max(flags.sum(), 1)),
                 "recall": float((flags & wrong).sum() / max(wrong.sum(), 1))}
                for name, flags in (("confident learning", self.flagged), ("prediction disagrees", self.disagree),
                                    ("least self-confident, same budget", self.least_confident))]


def audit_labels(messages: Messages, rows: np.ndarray, folds: int = 5, seed: int = 0) -> Audit:
    """Flag suspicious labels among ``rows`` with confident learning on out-of-fold logistic regression.

    The model sees words only: given the channel, it would learn the planted noise ("chat + refund words
    means billing") and agree with the wrong labels.
    """
    x = features(messages, rows, words_only=True)[rows]
    given = messages.given_queue[rows]
    probs = confident_learning.out_of_fold(
        lambda x_fit, y_fit, x_held: logistic_regression(x_fit, y_fit).predict_proba(x_held), x, given, folds, seed)
    flagged = confident_learning.find_label_issues(probs, given)
    cleaned = messages.given_queue.copy()
    cleaned[rows[flagged]] = probs[flagged].argmax(axis=1)
    return Audit(rows, probs, flagged, confident_learning.disagreements(probs, given),
                 confident_learning.least_self_confident(probs, given, int(flagged.sum())),
                 confident_learning.estimate_joint(probs, given), cleaned)


def label_noise_figure(audit: Audit, messages: Messages):
    """Off-diagonal cells of the estimated (given, true) counts next to the counts actually planted."""
    from helpers import plotting

    fig, axes = plotting.figure("Which labels are wrong, and how they are wrong", "true queue", "given label",
                                ncols=2, figsize=(10, 4.2))
    planted_counts = np.zeros((len(QUEUES), len(QUEUES)))
    np.add.at(planted_counts, (messages.given_queue[audit.rows], messages.true_queue[audit.rows]), 1)
    off = ~np.eye(len(QUEUES), dtype=bool)
    for ax, counts, title in ((axes[0], audit.joint * len(audit.rows), "estimated by confident learning"),
                              (axes[1], planted_counts, "planted (known only here)")):
        shown = np.where(off, counts, np.nan)
        image = ax.imshow(shown, cmap="viridis", vmin=0, vmax=max(1.0, float(np.nanmax(shown))))
        for (given, true), value in np.ndenumerate(shown):
            ax.text(true, given, "" if np.isnan(value) else f"{value:.0f}", ha="center", va="center", fontsize=8,
                    color="black" if value > 0.5 * np.nanmax(shown) else "white")
        ax.set_xticks(range(len(QUEUES)), QUEUES, rotation=45)
        ax.set_yticks(range(len(QUEUES)), QUEUES)
        ax.set_title(title)
        ax.grid(False)
        fig.colorbar(image, ax=ax, label="messages")
    axes[0].set_xlabel("true queue (estimated)")
    return fig


def segment_scores(messages: Messages, model, x: np.ndarray, rows: np.ndarray) -> dict[str, float]:
    """On ``rows`` (scored against the true queues): recall of chat messages about refunds, the segment the
    agents mislabelled, and accuracy on email and phone messages, which it should not touch."""
    predicted = model.predict(x[rows])
    truth, channel = messages.true_queue[rows], messages.channel[rows]
    chat = channel == CHANNELS.index("chat")
    chat_refund = chat & (truth == QUEUES.index("refund")) & (messages.burst[rows] < 0)
    return {"chat-refund recall": float(np.mean(predicted[chat_refund] == truth[chat_refund])),
            "email and phone accuracy": float(np.mean(predicted[~chat] == truth[~chat]))}


def relabelling(messages: Messages, audit: Audit, run: SplitRun) -> tuple[list[dict], dict[str, object]]:
    """Retrain the time split's logistic regression on each version of the labels and score the future.

    Versions: as recorded; confident learning's flags relabelled; every disagreement relabelled (the
    control for "was confident learning needed?"); and as recorded without the channel feature (the
    control for "is the fix the labels, or the feature the noise hides behind?"). Returns the table's rows
    and the models by name.
    """
    train, test = run.rows["train"], run.rows["test"]
    wrong = messages.given_queue != messages.true_queue
    no_channel = run.x[:, :-len(CHANNELS)]                                  # the last columns are the channel
    versions = {"as recorded": (run.x, messages.given_queue),
                "confident learning's flags relabelled": (run.x, audit.cleaned),
                "every disagreement relabelled": (run.x, audit.relabelled(messages, audit.disagree)),
                "as recorded, channel left out": (no_channel, messages.given_queue)}
    rows, fitted = [], {}
    for name, (x, labels) in versions.items():
        fitted[name] = run.model if name == "as recorded" else logistic_regression(x[train], labels[train])
        changed = labels != messages.given_queue
        rows.append({"labels": name, **segment_scores(messages, fitted[name], x, test),
                     "labels changed": int(changed.sum()), "right labels overwritten": int((changed & ~wrong).sum())})
    return rows, fitted


def check_pruning(fn, messages: Messages, audit: Audit, run: SplitRun, relabelled_recall: float) -> bool:
    """Exercise checker: ``fn(train_rows, flagged_rows)`` must return the training rows without the flagged
    ones. If it does, train on them and compare chat-refund recall with relabelling's. Never raises."""
    from helpers.exercises import attempt, correct, wrong

    answer = attempt(fn, np.array([4, 7, 9, 12]), np.array([7, 12, 30]), what="your prune function")
    if answer is NOT_ATTEMPTED:
        return False
    if not np.array_equal(np.sort(np.asarray(answer)), [4, 9]):
        return wrong(f"prune([4, 7, 9, 12], [7, 12, 30]) should keep [4, 9], got {answer!r}",
                     "keep the training rows that are not flagged: np.setdiff1d does it")
    kept = np.asarray(fn(run.rows["train"], audit.rows[audit.flagged]))
    model = logistic_regression(run.x[kept], messages.given_queue[kept])
    recall = segment_scores(messages, model, run.x, run.rows["test"])["chat-refund recall"]
    return correct(f"dropping {len(run.rows['train']) - len(kept)} flagged training messages gives chat-refund "
                   f"recall {recall:.2f} on the future, against {relabelled_recall:.2f} after relabelling them. "
                   f"Dropping removes the wrong evidence; relabelling also adds the right one.")


def pretrained_stand_in(messages: Messages, run: SplitRun, labels: np.ndarray, baseline, corpus: Messages,
                        dim: int = 24) -> list[dict]:
    """Accuracy on the future's ordinary messages with words new since day 220 and on the other ones, for
    logistic regression on the vocabulary alone (``baseline``) and with each message's average word vector
    appended, the vectors learned without labels (PPMI + SVD over dictionary words) from the ``corpus``
    text of before day 240 (the control) or of the whole year: a stand-in for a pretrained encoder."""
    train, test = run.rows["train"], run.rows["test"]
    dictionary = presence(messages)[:, :len(WORDS)]
    ordinary = messages.burst[test] < 0
    new = ordinary & np.isin(messages.words[test], NEW_TABLE).any(axis=1)
    truth = messages.true_queue[test]
    rows = []
    for name, corpus_rows in (("vocabulary only", None), ("+ vectors from text before day 240",
                                                          np.flatnonzero(corpus.day < TRAIN_END)),
                              ("+ vectors from the whole year's text", np.arange(len(corpus)))):
        x, model = run.x, baseline
        if corpus_rows is not None:
            vectors = word_vectors.word_vectors(presence(corpus)[corpus_rows, :len(WORDS)], dim)   # (words, dim)
            documents = word_vectors.document_vectors(dictionary, vectors).astype(np.float32)     # (n, dim)
            x = np.concatenate([run.x, 3.0 * documents], axis=1)
            model = logistic_regression(x[train], labels[train])
        right = model.predict(x[test]) == truth
        rows.append({"features": name, "accuracy, messages with new words": float(right[new].mean()),
                     "accuracy, other ordinary messages": float(right[ordinary & ~new].mean()),
                     "messages with new words": int(new.sum())})
    return rows
