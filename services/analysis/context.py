"""Context figures of one real user prompt: intent, sentiment, urgency, clarity, complexity.

`analyse_prompt(text, previous_prompt, previous_assistant)` is pure and cheap (it runs on
every prompt of live traffic) and never raises. Every figure is computed from visible cues,
so each can be explained from the prompt itself.

Bounded work: a prompt can hold a pasted 100 KB log. The cues are read from `window(text)`:
the first `HEAD_CHARS` and the last `TAIL_CHARS` characters (what the person wrote is almost
always at the start or the end of a paste). VADER's cost grows faster than the text, so
sentiment reads a smaller window (`SENTIMENT_HEAD` + `SENTIMENT_TAIL`), and readability reads
at most `PROSE_CHARS` characters of prose. `word_count` alone counts the whole text.

Intent (one of `INTENTS`, definitions in docs/analysis.md): a transparent rule-based
classifier. Each cue that fires adds its weight to one class's score; the highest score
wins, ties going to the more specific class (`_TIE_ORDER`). Cues, by class:

- interruption: the `[Request interrupted by user...]` marker (10).
- command: `/name` at the start whose first word holds no other `/` (so a pasted
  `/home/u/x: error` is not one), or `<command-name>` tags (6).
- request: a task verb at the start, after fillers such as "ok", "so", "now", "also" and
  adverbs (2.5); "can/could/would you <verb>" (2.5, or 1.5 for a verb outside the list); a
  task verb opening a later clause (1.5); "no, <task verb>..." (2); a short tool command line
  such as "git push" (1.5); "I want/need/would like" (1.5); "please", "we should/need to",
  "let's" (1 each); 60 words or more (0.5); a task verb on the last line after a paste (1);
  and a prior of 0.5, which decides when nothing else fires (the commonest class).
- question: ends with "?" (2, or 0.75 after "can you"; a "?" elsewhere 1); a wh-word (1.5)
  or an auxiliary verb (1) at the start; "explain", "tell me", "describe" at the start (2);
  "can you explain/tell/describe" (2); "I wonder", "do you know", "difference between" (1).
- exploration: an exploring verb at the start ("explore", "investigate", "review", "analyse",
  "think", "plan", "propose"...) (2); a question that asks for a direction ("what would be
  the best way", "how should we", "any ideas") (3); "can you <exploring verb>" (2); phrases in
  the first 600 characters ("best way", "options for", "pros and cons", "what do you think",
  "trade-offs", "how could we", "is it possible"...) 1.25 each, at most 3.
- feedback: error text (error, exception, traceback, failed, permission denied, line N...)
  1.5, or 3 from three matches on; pasted output (half the lines or more look like logs,
  prompts or tables) 2; bad outcomes ("still fails", "doesn't work", "not loading", "wrong",
  "you forgot", "nothing happens"...) 2, +0.75 per further phrase, at most 3.5; a sentence
  that starts with one ("wrong", "still ...", "fail") 2; observations ("I see", "I get",
  "it says", "when I") 1.
- clarification: a correction at the start ("I meant", "not the", "instead", "the second
  option", "remember", "use X not Y") 2.5, elsewhere ("instead of", "rather than") 1.5; a
  choice ("2", "B", "both") 3 after an assistant question, else 1.5; a statement of context
  ("I have", "we use", "there is") 1; answering a question the previous assistant message
  ended with (2; 0.75 when the question offered to do something, which approval and
  rejection answer); 6 words or fewer after a question (0.5); "no, ..." followed by more (1).
- approval: a reply of at most 12 words made only of approval words ("yes", "ok", "go
  ahead", "looks good", "thanks", "continue", "commit it") with at least one head word (4);
  starting with one (1.5 up to 6 words, else 0.75); "continue"/"proceed" (2 up to 6 words,
  else 1); a yes after an offer or question (1.5 up to 6 words, else 0.5).
- rejection: the same for rejection words ("no", "stop", "don't", "revert", "undo") (4);
  starting with one, "no" only as an answer ("no, ...", "no don't"), not as a determiner
  ("no data is loading") (1.5); a no after an offer (1.5).

`intent_confidence` = s1 / (s1 + s2 + 1), s1 and s2 the best and second-best scores (the
request prior counts): it grows with the strength of the winning evidence and shrinks when
another class has evidence too. One imperative verb alone gives 0.75, the prior alone 0.33,
"can you add a test?" 0.63. The interruption marker always carries the same evidence, so it
always gets the same confidence (0.87). `intent_evidence` lists the cues of
the winning class with their weights, then the runner-up's.

Interruption markers and slash commands: sentiment, urgency and complexity are computed on
what the user typed, i.e. nothing for a marker (0) and the arguments of a command.

Sentiment: VADER's compound score (Hutto & Gilbert, 2014), -1..1, on the sentiment window
with fenced code removed.

Urgency, 0..1: a noisy-OR over cue weights, 1 - prod(1 - w) for each cue that fires (each
at most once): urgent words ("urgent", "asap", "immediately", "right now", "hurry") 0.5;
critical/blocking words ("critical", "emergency", "blocker", "p0", "sev1") 0.45; production
or outage words ("production", "prod", "outage", "is down", "customers", "incident") 0.35;
a deadline ("today", "tonight", "deadline", "by eod") 0.25; two or more "!" in a row 0.3; a
single "!" 0.1; shouting (at least three all-caps words of three or more letters making up
at least 30% of the words) 0.3; "now" as a word 0.1. No cue: 0.

Clarity, 0..1: starts at 0.5. Specificity adds up to 0.3: 0.1 per kind of concrete
reference present (a path or file name, a code identifier or `code`, a line number or
error text, a URL, a quoted string). A length of 4-150 words adds 0.1 (for approval,
rejection, command and interruption, short is clear and 1-3 words also add 0.1); other
prompts of 1-3 words lose 0.15 and prompts over 400 words lose 0.1. A well-formed question
(one or two `?`, interrogative start) adds 0.1. Vagueness takes away: vague referents ("it",
"this", "that", "stuff", "something"...) making up more than 15% of the words with no
concrete reference -0.2; hedges ("maybe", "somehow", "kind of", "etc") -0.05 each, at most
-0.15. Clamped to 0..1. A heuristic without ground truth: use it to compare prompts.

Complexity: Coleman-Liau grade level (textstat) of the prose: fenced and inline code,
URLs, paths and log-like lines (fewer than half of their characters letters) removed, and
each line break without end punctuation read as a sentence end (prompts are often written
as unpunctuated lines, which would otherwise read as one endless sentence). Coleman-Liau
because it is a grade (years of schooling), readable without a table, and depends only on
letters per word and words per sentence: Flesch-Kincaid needs syllable counts, for which
textstat loads the CMU pronouncing dictionary (74 MB resident, 1-3 s to load) in every
process that analyses; Dale-Chall counts every word outside a list of 3,000 familiar words
as difficult, which marks almost all technical vocabulary. Clamped to 0..20; 0 for prose
of fewer than three words.

Similarity with the previous prompt: `services.analysis.text.similarity` of the two windows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import textstat
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from services.analysis import text as text_measures
from threadline.domain.analysis import PromptAnalysis

INTENTS = ("question", "request", "command", "clarification", "feedback", "exploration",
           "interruption", "approval", "rejection")

HEAD_CHARS = 2000
TAIL_CHARS = 1000
SENTIMENT_HEAD = 700
SENTIMENT_TAIL = 300
PROSE_CHARS = 1200
COMPLEXITY_MAX = 20.0

_analyzer = SentimentIntensityAnalyzer()


def window(text: str) -> str:
    """The part of a prompt that is analysed: all of it, or its head and tail."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


# --- intent cues -----------------------------------------------------------------------------

_INTERRUPTED = "[request interrupted by user"
# `/name args`: a slash command, unless the first word is a path (`/home/u/x: error`).
_SLASH_COMMAND = re.compile(r"/[a-z][\w:.\-]*(?:\s|$)")
_COMMAND_TAG = "<command-name>"

# Words that open a message without carrying its intent; skipped before the first verb.
_FILLER = re.compile(
    r"^(?:(?:ok(?:ay)?|so|now|also|and|or|then|next|alright|all right|well|hey|hi|hello|"
    r"claude|codex|gemini|great|cool|nice|perfect|thanks|thank you|actually|btw|oh|hmm|"
    r"right|good|sure|yes|yeah|yep|fine|excellent|awesome|amazing|but|ah|um|wait|first|"
    r"finally|lastly|ultrathink|think hard)\b[\s,.!:;\-]*)+")

_VERB_LIST = (
    "add|fix|create|write|implement|refactor|update|remove|delete|rename|move|change|make|"
    "run|rerun|re-run|build|rebuild|install|reinstall|deploy|use|set|setup|push|pull|commit|"
    "merge|test|generate|convert|port|replace|clean|cleanup|document|integrate|intergrate|"
    "migrate|optimi[sz]e|improve|debug|read|load|reload|check|search|find|edit|modify|"
    "configure|enable|disable|launch|start|restart|kill|redo|do|try|put|include|extend|"
    "split|combine|format|save|open|spawn|execute|apply|bump|upgrade|downgrade|rewrite|"
    "simplify|reduce|increase|retry|restore|drop|insert|append|wrap|handle|support|allow|"
    "ensure|verify|validate|fetch|clone|checkout|download|upload|copy|print|display|"
    "show|list|give|provide|send|draft|prepare|summari[sz]e|translate|organi[sz]e|sort|"
    "scaffold|initiali[sz]e|init|bootstrap|mock|lint|compile|package|publish|release|tag|"
    "stage|squash|rebase|stash|get|keep|help|finish|complete|address|resolve|tweak|adjust|"
    "align|center|style|resize|refine|polish|fill|mod|deploy|ignore|tidy|rename|hook|wire|"
    "connect|expose|hide|pin|unpin|annotate|comment|go through|work on|bring|deal with|"
    "take|create|store|persist|cache|parse|emit|return|throw|raise|catch|skip|limit|"
    "increase|decrease|move|swap|switch|toggle|reset|rollback|benchmark|profile|measure|"
    "monitor|track|record|port|reorder|rearrange|separate|merge|extract|inline|refresh|"
    "rename|regenerate|recompile|restructure|reorgani[sz]e|fill in|set up|clean up|look up|"
    "write up|sign|encrypt|decrypt|mount|unmount|attach|detach|present|accept|pick|choose|"
    "select|call|invoke|serve|host|remember to|expand|enhance|register|activate|deactivate|"
    "destroy|prevent|tackle|hardcode|re-?read|incorporate|uninstall|unregister|rebase")
# A verb, not the start of a file name ("test.txt") or a question ("do we ...").
_TASK_VERB = re.compile(rf"^(?:please |pls |kindly |just |quickly |now |also |then |"
                        rf"\w+ly )*(?!do (?:we|you|i|they)\b)"
                        rf"({_VERB_LIST})\b(?![.\-/]\w)")
# Command lines typed as instructions ("git push", "npm test").
_TOOL_LINE = re.compile(r"^(?:git|npm|npx|yarn|pnpm|uv|pip|make|cargo|docker|mix|python3?|"
                        r"node|bash|sudo|conda|go|kubectl|terraform|bd|gh) \S")
_INFO_VERBS = r"explain|tell|describe|clarify|elaborate|define|remind"
_EXPLORE_VERBS = (r"explore|brainstorm|investigate|research|think|consider|evaluate|assess|"
                  r"analy[sz]e|review|audit|look|scope|propose|suggest|recommend|compare|plan|"
                  r"examine|study|weigh|discuss|figure out|dig|survey|inspect|understand|"
                  r"find out|come up")
_INFO_START = re.compile(rf"^(?:please )?(?:{_INFO_VERBS})\b")
_INFO_VERB = re.compile(rf"(?:{_INFO_VERBS})\b")
_EXPLORE_VERB = re.compile(rf"(?:{_EXPLORE_VERBS})\b")
_EXPLORE_START = re.compile(rf"^(?:please |let'?s |let us |we should |i'?d like (?:you )?to )?"
                            rf"(?:{_EXPLORE_VERBS})\b")
_POLITE = re.compile(r"\b(?:can|could|would|will) you (?:please |pls |kindly |also |maybe |"
                     r"just |now |then )*([a-z'\-]+(?: [a-z]+)?)")
_WANT = re.compile(r"\b(?:i|we) (?:want|need|would like|'d like|wanna|require)\b|"
                   r"\bi'd like\b|\bi would like\b")
_SHOULD = re.compile(r"\b(?:we|you) (?:need to|should|must|have to|gotta)\b|"
                     r"\b(?:it|this|that) (?:should|needs to|must)\b")
_CLAUSE = re.compile(r"[.;,!?:\n]+\s*|\s+(?:and|then|but|so|pls|please)\s+")
_LETS = re.compile(r"\blet'?s\b|\blet us\b")
_PLEASE = re.compile(r"\b(?:please|pls|plz)\b")

_WH_START = re.compile(r"^(?:what|why|how|where|when|which|who|whose|whom)\b")
_AUX_START = re.compile(
    r"^(?:is|are|am|was|were|do|does|did|can|could|should|would|will|shall|has|have|had|"
    r"may|might|isn'?t|aren'?t|doesn'?t|didn'?t|won'?t|wouldn'?t|couldn'?t|shouldn'?t|"
    r"wasn'?t|weren'?t|hasn'?t|haven'?t)\b")
_ASKING = re.compile(r"\b(?:i wonder|i'?m curious|do you know|any idea (?:why|how|what)|"
                     r"tell me|explain|meaning of|difference between)\b")

# Questions that ask for a direction rather than a fact.
_OPEN_QUESTION = re.compile(
    r"^(?:what(?:'s| is| would be| might be| could be) (?:the |a )?(?:best|better|right|"
    r"cleanest|simplest) (?:way|approach|option|design|strategy|solution)|how (?:should|"
    r"could|would|might|can) we\b|what do you think|what are (?:the|our|my|some) "
    r"(?:options|alternatives|approaches)|any (?:ideas|thoughts|suggestions)|"
    r"is there a (?:better|cleaner|simpler) way|would it (?:make sense|be better))")
_EXPLORATION = re.compile(
    r"\b(?:explor\w*|brainstorm\w*|investigat\w*|research|think (?:about|through|of)|"
    r"thinking (?:about|of)|options (?:for|to)|(?:what|which) (?:are )?(?:the |my |our )?"
    r"options?|alternatives?|(?:other|different|alternative|which|right) approach(?:es)?|"
    r"best (?:way|approach|"
    r"practice|idea|path|option|solution|method)|trade-?offs?|pros and cons|strengths|"
    r"weak(?:nesses| points)|opinion|what do you think|thoughts on|your thoughts|ideas|"
    r"any idea|"
    r"propos\w*|suggest\w*|recommend\w*|overview|look around|get familiar|familiari[sz]e|"
    r"scope out|plan (?:out|for|a|the|us)|strateg\w*|evaluat\w*|assess\w*|compare|"
    r"possible improvements?|any improvements?|improvements? (?:to|for)|"
    r"how (?:could|would|can|should|might) we|"
    r"what if|would it make sense|is it worth|feasib\w*|is it possible|could we|"
    r"is there (?:a|any) (?:way|better)|something better|architecture)\b")

_APPROVAL_HEADS = frozenset(
    "yes y yep yeah yup ya sure ok okay k kk go proceed continue contnue continue. lgtm "
    "perfect great excellent awesome amazing good nice cool thanks thank ty approved "
    "agreed correct exactly right fine wonderful brilliant love works worked resume "
    "commit push ship".split())
_APPROVAL_WORDS = _APPROVAL_HEADS | frozenset(
    "please do it that this sounds looks seems good ahead for on with the plan keep going "
    "carry all much very job work well done is it's its fixed now you so far looking and "
    "then go let's lets me i like as way to a an just fine thats that's".split())
_APPROVAL_START = re.compile(
    r"^(?:yes|yeah|yep|yup|sure|ok(?:ay)?|perfect|great|excellent|awesome|amazing|lgtm|"
    r"sounds good|looks good|looks great|go ahead|go for it|proceed|continue|contnue|"
    r"carry on|keep going|good job|nice work|great work|well done|thanks|thank you|"
    r"(?:that|this|it)(?: approach| one| version| fix)? (?:works|worked|is working|"
    r"looks (?:good|great|right)|is (?:perfect|great|better)))\b")
_CONTINUE = re.compile(r"^(?:continue|contnue|proceed|carry on|keep going|go on|resume|"
                       r"keep at it)\b")
_REJECTION_HEADS = frozenset(
    "no nope nah n stop cancel abort don't dont revert undo wait hold nevermind never "
    "forget skip".split())
_REJECTION_WORDS = _REJECTION_HEADS | frozenset(
    "do not that it this mind thanks thank you like please on off leave now yet just "
    "them those changes change back everything all".split())
# "no" as an answer ("no, ...", "no don't"), not as a determiner ("no data is loading").
_REJECTION_START = re.compile(
    r"^(?:no(?:pe)?(?:[,.!;:]|\s*$|\s+(?:don'?t|dont|do not|not|stop|that|this|thanks|"
    r"thank|wait|leave|revert|undo|i|we|use|keep|please|never|no|it|it'?s|you|just|"
    r"instead)\b)|"
    r"nah\b|don'?t\b|do not\b|stop\b|wait\b|hold on\b|hold off\b|never ?mind\b|revert\b|"
    r"undo\b|roll ?back\b|cancel\b|abort\b|forget it\b|not like (?:this|that)\b)")
_AFTER_NO = re.compile(r"^no(?:pe)?[\s,.!;:]+")

_CORRECTION_START = re.compile(
    r"^(?:i meant|i mean|what i meant|i was (?:talking|referring|asking)|to clarify|"
    r"just to clarify|clarification|correction|rather|instead|not the|not that|"
    r"no,? i meant|sorry,? i (?:meant|mean|forgot)|oh,? i meant|i should have (?:said|"
    r"mentioned)|i forgot to (?:say|mention)|forgot to mention|note that|fyi|for context|"
    r"for reference|remember|keep in mind|the (?:first|second|third|fourth|last|other|"
    r"former|latter|new|old|previous) (?:one|option|file|approach|version|way)|"
    r"(?:option|choice|answer) [a-z0-9]\b|use (?:the )?[\w.\-/]+,? (?:not|instead|rather than)\b|"
    r"not [\w.\-]+,? (?:but|use)|only (?:the|for|in))")
_CORRECTION_ANY = re.compile(r"\b(?:i meant|i mean|instead of|rather than|not what i|"
                             r"what i (?:want|need|meant)|i was referring)\b")
_CHOICE = re.compile(r"^(?:option |choice |answer )?(?:[a-e]|[1-9]|one|two|three|both|"
                     r"neither|all of them|all|none|the (?:first|second|third|last) "
                     r"(?:one|option)?|first|second|third|last)\)?\s*$")
_CONTEXT_STATEMENT = re.compile(
    r"^(?:i (?:have|had|am|'m|use|used|moved|created|made|added|installed|updated|changed|"
    r"just|already|don'?t want|do not want|only|want it|prefer|deleted|renamed|ran|"
    r"restarted)|i'?ve|we (?:have|had|are|use|already|don'?t|do not|moved|'re|were)|"
    r"we'?ve|it'?s (?:a|an|the|in|on|at|for|located)|the (?:file|repo|project|code|"
    r"database|db|server|app|path|folder|directory) is|there'?s|there (?:is|are)|"
    r"it (?:is|was) (?:a|an|the|in|on|at|for))\b")

_PERMISSION_ASK = re.compile(
    r"(?:shall i|should i|would you like|do you want|want me to|like me to|may i|can i|"
    r"ready to|ok to|okay to|is that ok|sound good|sounds good\?|does (?:this|that) "
    r"(?:look|sound)|let me know if|proceed|go ahead|implement (?:this|these|it)\?)")

# Feedback: outcomes, errors and observations.
_ERROR_LINE = re.compile(
    r"(?:traceback \(most recent call last\)|exception\b|\berrors?\b|\berr!|failed|failure|"
    r"\bfail(?:s|ing)?\b|fatal|panic|segfault|warning[:\[]|^e: |permission denied|"
    r"not found|no such file|undefined|unbound variable|syntax error|cannot |can'?t find|"
    r"unable to|exit code|exit status|non-zero|✗|errno|^\s+at .+:\d+|line \d+|"
    r"\bdenied\b|refused|timed? ?out|\b[45]\d\d\b (?:error|not|bad|internal))",
    re.MULTILINE)
_LOG_LINE = re.compile(r"^\s*(?:\[[A-Z]+\]|\[?\d{2,4}[-/:]\d{2}|\+ |\$ |> |#\d|"
                       r"[✓✗═│⎿●▶►→•]|-{3,}|={3,}|at |File \"|\w+Error\b|E: |W: |npm |"
                       r"\d+\s*\|)")
_BAD_OUTCOME = re.compile(
    r"\b(?:still (?:not|doesn'?t|does not|isn'?t|fails?|failing|broken|the same|getting|"
    r"seeing|happening|no|nothing|an? error|errors?|shows?|hangs?|stuck)|doesn'?t work|"
    r"does not work|didn'?t work|did not work|not working|isn'?t working|"
    r"(?:won'?t|wont|doesn'?t|does not) (?:work|stay|start|load|run|connect|compile|build|"
    r"open|show|save|respond)|keeps? (?:failing|crashing|dropping|breaking|hanging)|"
    r"stopped working|is broken|are broken|broke|broken|you broke|did nothing|nothing "
    r"happen\w*|no change|same (?:error|issue|problem|result)|wrong|incorrect|missing|"
    r"we lost|you lost|got lost|disappeared|not showing|isn'?t showing|doesn'?t show|"
    r"not loading|no output|crash\w*|hangs?|freez\w*|stuck|misaligned|unhappy|"
    r"doesn'?t (?:seem|look|load|start|run|compile|build|do|display|render|appear)|"
    r"isn'?t (?:right|correct|loading|rendering|displayed)|not (?:right|correct|"
    r"supported|what i)|sound(?:s)? the same|looks? (?:off|weird|wrong|bad|broken)|"
    r"annoying|regress\w*|fails?|failing|errors? (?:out|again)|throws?|complains?|"
    r"you (?:did|didn'?t|forgot|missed|removed|deleted|changed|ignored)|doesn'?t seem|"
    r"(?:no|nothing) (?:\w+ ){0,4}(?:is|are|was|were) (?:loading|showing|working|appearing|"
    r"happening|rendering|displayed|shown|loaded|returned)|nothing (?:happens|happened|"
    r"shows|changed))\b")
_OBSERVATION = re.compile(
    r"\b(?:i see|i'?m seeing|i am (?:not )?seeing|i noticed|i saw|i get|i got|i'?m getting|"
    r"i am getting|i keep getting|it shows|it says|it gives|it returns|the output|"
    r"now (?:it|the|there|i)|when i|the result|i tried|tried it|i ran|ran it)\b")
_FAIL_START = re.compile(r"^(?:fail\w*|wrong|broken|error|nope,? still|still|"
                         r"that'?s (?:not|wrong)|this is (?:not|wrong)|it'?s (?:not|still)|"
                         r"not (?:working|quite|right))\b")

_WORDS = re.compile(r"[A-Za-z][A-Za-z'\-]*")
_WS = re.compile(r"\s+")
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")


@dataclass(slots=True)
class _Scores:
    points: dict[str, float] = field(default_factory=dict)
    cues: dict[str, list[str]] = field(default_factory=dict)

    def add(self, intent: str, cue: str, weight: float) -> None:
        self.points[intent] = self.points.get(intent, 0.0) + weight
        self.cues.setdefault(intent, []).append(f"{cue} +{weight:g}")


def _assistant_asked(previous_assistant: str) -> tuple[bool, bool]:
    """(the previous assistant message ended with a question, it asked for permission)."""
    tail = previous_assistant[-400:].rstrip(" \n\t*_`)").lower()
    if not tail:
        return False, False
    mark = tail.rfind("?")
    asked = mark >= 0 and len(tail) - mark <= 120
    permission = _PERMISSION_ASK.search(tail[-250:]) is not None
    return asked, permission


def classify(view: str, previous_assistant: str = "") -> tuple[str, float, str]:
    """(intent, confidence, evidence) of a prompt's analysed window (see the module doc)."""
    s = _Scores()
    s.add("request", "prior", 0.5)
    stripped = view.strip()
    low = _WS.sub(" ", stripped.lower())
    if low.startswith(_INTERRUPTED) or low.startswith("<turn_aborted>"):
        s.add("interruption", "interrupt_marker", 10.0)
    if _COMMAND_TAG in low[:400] or (low.startswith("/") and _SLASH_COMMAND.match(low)):
        s.add("command", "slash_command", 6.0)
    if len(s.points) > 1:
        return _decide(s)

    head = _FILLER.sub("", low[:300])
    words = low.split()
    n_words = len(words)
    asked, permission = _assistant_asked(previous_assistant)

    # Short replies made only of approval / rejection words.
    core_words = [w for w in (_EDGE_PUNCT.sub("", w) for w in words) if w] \
        if n_words <= 12 else []
    if core_words:
        word_set = set(core_words)
        if word_set <= _APPROVAL_WORDS and word_set & _APPROVAL_HEADS:
            s.add("approval", "approval_only", 4.0)
        if word_set <= _REJECTION_WORDS and word_set & _REJECTION_HEADS:
            s.add("rejection", "rejection_only", 4.0)
        if _CHOICE.match(" ".join(core_words)):
            s.add("clarification", "choice_reply", 3.0 if asked else 1.5)
    if _APPROVAL_START.match(low):
        s.add("approval", "approval_start", 1.5 if n_words <= 6 else 0.75)
        if permission or asked:
            s.add("approval", "answers_offer", 1.5 if n_words <= 6 else 0.5)
    if _CONTINUE.match(head):
        s.add("approval", "continue", 2.0 if n_words <= 6 else 1.0)
    if _REJECTION_START.match(low):
        s.add("rejection", "rejection_start", 1.5)
        if permission:
            s.add("rejection", "declines_offer", 1.5)
        if n_words > 3:
            s.add("clarification", "correction_after_no", 1.0)
    rest = _AFTER_NO.sub("", head)
    if rest != head and _TASK_VERB.match(rest):
        s.add("request", "new_task_after_no", 2.0)

    # Imperative: a task (a correction such as "use X, not Y" is counted as a correction).
    correction = _CORRECTION_START.match(head) or _CORRECTION_START.match(low)
    task = None if correction else _TASK_VERB.match(head)
    if task:
        s.add("request", f"imperative:{task.group(1)}", 2.5)
    elif _TOOL_LINE.match(head) and n_words <= 8:
        s.add("request", "command_line", 1.5)
    clauses = sum(1 for clause in _CLAUSE.split(low[:600])[1:]
                  if _TASK_VERB.match(_FILLER.sub("", clause)))
    if clauses:
        s.add("request", f"imperative_clause:{clauses}", 1.5)
    polite = _POLITE.search(low[:400])
    if polite:
        verb = polite.group(1)
        if _INFO_VERB.match(verb):
            s.add("question", f"can_you_explain:{verb.split()[0]}", 2.0)
        elif _EXPLORE_VERB.match(verb):
            s.add("exploration", f"can_you_explore:{verb.split()[0]}", 2.0)
        elif _TASK_VERB.match(verb):
            s.add("request", f"can_you:{verb.split()[0]}", 2.5)
        else:  # "can you <verb>" asks for an action even when the verb is not in the list
            s.add("request", f"can_you:{verb.split()[0]}", 1.5)
    if _PLEASE.search(low[:400]) and n_words > 2:
        s.add("request", "please", 1.0)
    if _WANT.search(low[:400]):
        s.add("request", "i_want", 1.5)
    if _SHOULD.search(low[:400]):
        s.add("request", "we_should", 1.0)
    if _LETS.search(low[:200]):
        s.add("request", "lets", 1.0)
    if n_words >= 60 and not asked:
        s.add("request", "long_instruction", 0.5)

    # Question form.
    end = stripped.rstrip(" \t\n)\"'`*_:;.,!").endswith("?") or stripped.rstrip().endswith("?")
    if end:
        s.add("question", "ends_with_?", 0.75 if polite else 2.0)
    elif "?" in low[:600]:
        s.add("question", "has_?", 0.5 if polite else 1.0)
    if _WH_START.match(head):
        s.add("question", "wh_start", 1.5)
    elif _AUX_START.match(head) and not polite:
        s.add("question", "aux_start", 1.0)
    if _INFO_START.match(head):
        s.add("question", "explain_start", 2.0)
    if _ASKING.search(low[:600]):
        s.add("question", "asking_phrase", 1.0)

    # Exploration.
    if _EXPLORE_START.match(head):
        s.add("exploration", "explore_start", 2.0)
    elif _OPEN_QUESTION.match(head):
        s.add("exploration", "open_question", 3.0)
    found = {m.group(0) for m in _EXPLORATION.finditer(low[:600])}
    if found:
        s.add("exploration", "open_ended:" + ",".join(sorted(found)[:3]),
              min(3.0, 1.25 * len(found)))

    # Feedback: errors, pasted output, bad outcomes, observations.
    errors = 0
    for _ in _ERROR_LINE.finditer(low):
        errors += 1
        if errors == 3:  # the weight does not grow beyond three
            break
    if errors:
        s.add("feedback", f"error_text:{errors}", 3.0 if errors >= 3 else 1.5)
    lines = [ln for ln in stripped.splitlines() if ln.strip()]
    if len(lines) >= 3:
        logged = sum(1 for ln in lines if _LOG_LINE.match(ln))
        if logged * 2 >= len(lines):
            s.add("feedback", "pasted_output", 2.0)
    bad = {m.group(0) for m in _BAD_OUTCOME.finditer(low[:1500])}
    if bad:
        s.add("feedback", "bad_outcome:" + ",".join(sorted(bad)[:3]),
              min(3.5, 2.0 + 0.75 * (len(bad) - 1)))
    if _OBSERVATION.search(low[:1500]):
        s.add("feedback", "observation", 1.0)
    if _FAIL_START.match(head):
        s.add("feedback", "fail_start", 2.0)
    if len(lines) >= 3:  # the words typed after a paste
        last = _FILLER.sub("", lines[-1].strip().lower()[:200])
        if _TASK_VERB.match(last):
            s.add("request", "imperative_last_line", 1.0)
        elif _WH_START.match(last) or last.endswith("?"):
            s.add("question", "question_last_line", 1.0)

    # Clarification.
    if correction:
        s.add("clarification", "correction_start", 2.5)
    elif _CORRECTION_ANY.search(low[:600]):
        s.add("clarification", "correction_phrase", 1.5)
    if _CONTEXT_STATEMENT.match(head) and not end:
        s.add("clarification", "context_statement", 1.0)
    if asked and not permission:
        s.add("clarification", "answers_question", 2.0)
    elif asked or permission:
        s.add("clarification", "replies_to_offer", 0.75)
    if asked and n_words <= 6:
        s.add("clarification", "short_answer", 0.5)
    return _decide(s)


# Ties go to the more specific class.
_TIE_ORDER = ("interruption", "command", "rejection", "approval", "clarification", "feedback",
              "exploration", "question", "request")


def _decide(s: _Scores) -> tuple[str, float, str]:
    ranked = sorted(s.points.items(), key=lambda kv: (-kv[1], _TIE_ORDER.index(kv[0])))
    best, s1 = ranked[0]
    second, s2 = ranked[1] if len(ranked) > 1 else ("", 0.0)
    confidence = round(s1 / (s1 + s2 + 1.0), 3)
    evidence = f"{best} {s1:g}: " + ", ".join(s.cues[best])
    if second:
        evidence += f"; next {second} {s2:g}: " + ", ".join(s.cues[second])
    return best, confidence, evidence


# --- sentiment, urgency, clarity, complexity -------------------------------------------------

_FENCED = re.compile(r"```.*?(?:```|$)", re.DOTALL)


def sentiment(view: str) -> float:
    """VADER compound score, -1..1, of the sentiment window without fenced code."""
    if len(view) > SENTIMENT_HEAD + SENTIMENT_TAIL:
        view = view[:SENTIMENT_HEAD] + "\n" + view[-SENTIMENT_TAIL:]
    if "```" in view:
        view = _FENCED.sub(" ", view)
    if not view.strip():
        return 0.0
    return round(float(_analyzer.polarity_scores(view)["compound"]), 4)


_URGENCY_CUES = (
    (re.compile(r"\b(?:urgent\w*|asap|a\.s\.a\.p|immediately|right now|right away|hurry|"
                r"quickly|as soon as possible|straight away)\b"), 0.5),
    (re.compile(r"\b(?:critical|emergency|blocker|blocking|showstopper|p0|p1|sev ?[01]|"
                r"top priority|high priority)\b"), 0.45),
    (re.compile(r"\b(?:production|prod|outage|is down|are down|went down|customers?|"
                r"incident|hotfix|data loss|live site)\b"), 0.35),
    (re.compile(r"\b(?:today|tonight|deadline|by eod|end of day|this morning|in an hour|"
                r"before the demo)\b"), 0.25),
)
_BANGS = re.compile(r"!{2,}")
_NOW = re.compile(r"\bnow\b")


def urgency(view: str) -> float:
    """Noisy-OR of urgency cue weights, 0..1 (see the module docstring)."""
    low = view.lower()
    calm = 1.0
    for pattern, weight in _URGENCY_CUES:
        if pattern.search(low):
            calm *= 1.0 - weight
    if _BANGS.search(view):
        calm *= 1.0 - 0.3
    elif "!" in view:
        calm *= 1.0 - 0.1
    words = _WORDS.findall(view[:2000])
    caps = [w for w in words if len(w) >= 3 and w.isupper()]
    if len(caps) >= 3 and len(caps) >= 0.3 * len(words):
        calm *= 1.0 - 0.3
    if _NOW.search(low):
        calm *= 1.0 - 0.1
    return round(1.0 - calm, 3)


_PATH = re.compile(r"(?:[\w.\-~]*/[\w.\-/]+|\b[\w\-]+\.(?:py|js|ts|tsx|jsx|rs|go|java|rb|"
                   r"md|json|ya?ml|toml|sh|c|h|cpp|hpp|css|html|sql|txt|lock|cfg|ini|"
                   r"ex|exs|kt|swift|php|vue|svelte|xml|csv|log)\b)")
_IDENTIFIER = re.compile(r"`[^`\n]+`|\b[a-z]+_[a-z0-9_]+\b|\b[a-z]+[A-Z]\w*\b|"
                         r"\b\w+\(\)|\b[A-Za-z_]+\.[A-Za-z_]+\(")
_LINE_REF = re.compile(r"\bline \d+|:\d+:\d+|\berror\b|exception|traceback")
_URL = re.compile(r"https?://\S+")
_QUOTED = re.compile(r"\"[^\"\n]{2,80}\"|'[^'\n]{3,80}'")
_VAGUE = frozenset("it this that these those thing things stuff something somewhere "
                   "someone whatever they them".split())
_HEDGES = re.compile(r"\b(?:maybe|somehow|kind of|sort of|etc|whatever|or something|"
                     r"something like|i guess|probably|not sure)\b")
_SHORT_IS_CLEAR = frozenset({"approval", "rejection", "command", "interruption"})


def clarity(view: str, intent: str) -> float:
    """Specificity minus vagueness, 0..1 (see the module docstring)."""
    words = view.split()
    n = len(words)
    score = 0.5
    low = view.lower()
    concrete = sum(1 for pattern in (_PATH, _IDENTIFIER, _URL, _QUOTED) if pattern.search(view))
    concrete += _LINE_REF.search(low) is not None
    score += 0.1 * min(3, concrete)
    if intent in _SHORT_IS_CLEAR:
        if 1 <= n <= 150:
            score += 0.1
    elif n <= 3:
        score -= 0.15
    elif n <= 150:
        score += 0.1
    elif n > 400:
        score -= 0.1
    questions = view.count("?")
    if 1 <= questions <= 2:
        head = _FILLER.sub("", view.lstrip().lower()[:100])
        if _WH_START.match(head) or _AUX_START.match(head):
            score += 0.1
    if n and not concrete:
        prose_words = _WORDS.findall(low[:2000])
        vague = sum(1 for w in prose_words if w in _VAGUE)
        if vague > 0.15 * len(prose_words):
            score -= 0.2
    score -= min(0.15, 0.05 * len(_HEDGES.findall(low[:2000])))
    return round(min(1.0, max(0.0, score)), 3)


_INLINE_CODE = re.compile(r"`[^`\n]*`")
# A word holding one of these is code, a path, a URL or a file name, not prose.
_CODE_MARK = re.compile(r"[/\\_=<>{}\[\]|#@$]|\w\.\w")
_END_PUNCT = frozenset(".!?:;")


def complexity(view: str) -> float:
    """Coleman-Liau grade of the prose, 0..20 (see the module docstring)."""
    if "```" in view:
        view = _FENCED.sub("\n", view)
    sentences = []
    size = 0
    for line in view.splitlines():
        if "`" in line:
            line = _INLINE_CODE.sub(" ", line)
        line = " ".join(w for w in line.split() if not _CODE_MARK.search(w))
        if not line:
            continue
        letters = sum(map(str.isalpha, line))
        if letters * 2 < len(line.replace(" ", "")):
            continue  # log output, tables, numbers
        sentences.append(line if line[-1] in _END_PUNCT else line + ".")
        size += len(line)
        if size >= PROSE_CHARS:
            break
    prose = " ".join(sentences)[:PROSE_CHARS]
    if len(_WORDS.findall(prose)) < 3:
        return 0.0
    grade = float(textstat.coleman_liau_index(prose))
    return round(min(COMPLEXITY_MAX, max(0.0, grade)), 2)


# --- the whole analysis ------------------------------------------------------------------------

_ARGS_TAG = re.compile(r"<command-args>(.*?)</command-args>", re.DOTALL)


def _command_arguments(view: str) -> str:
    """What was typed after a slash command's name."""
    tagged = _ARGS_TAG.search(view)
    if tagged is not None:
        return tagged.group(1)
    if _COMMAND_TAG in view:
        return ""
    parts = view.strip().split(None, 1)
    return parts[1] if len(parts) > 1 else ""


def analyse_prompt(text: str, previous_prompt: str = "",
                   previous_assistant: str = "") -> PromptAnalysis:
    """Context figures of one real user prompt (see the module docstring). Never raises."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    previous_prompt = previous_prompt if isinstance(previous_prompt, str) else ""
    previous_assistant = previous_assistant if isinstance(previous_assistant, str) else ""
    view = window(text)
    intent, confidence, evidence = classify(view, previous_assistant[-400:])
    typed = view
    if intent == "interruption":
        typed = ""  # a marker the CLI writes: no words of the user's to measure
    elif intent == "command":
        typed = _command_arguments(view)
    return PromptAnalysis(
        intent=intent,
        intent_confidence=confidence,
        intent_evidence=evidence,
        sentiment=sentiment(typed),
        urgency=urgency(typed),
        clarity=clarity(view, intent),
        complexity=complexity(typed),
        similarity_previous=round(text_measures.similarity(view, window(previous_prompt)), 4),
        word_count=len(text.split()),
    )


__all__ = ["INTENTS", "analyse_prompt", "classify", "clarity", "complexity", "sentiment",
           "urgency", "window"]
