"""Which words of a prompt a model knows: a vocabulary check before anything is generated.

A model knows the words of its training captions. ``Vocabulary`` holds them as base forms ("sits", "sitting",
"sat" -> "sit"), grouped by the action (and style) whose captions they come from, and is stored with the
weights as ``vocab.json`` (``write_vocabulary``; runtime folders get a copy). ``Vocabulary.check(prompt)``
reads a prompt against it:

* words that ask for a motion, a body part, a direction, a style or a prop are found with a model-independent
  list (``data/motion_words.json``: concepts such as *sit* = sit, seat, perch, …, phrases such as "stand up",
  irregular forms); such a word is **recognised** when the model's captions hold it or a word of the same
  concept, else **unrecognised**;
* a motion word the captions use only next to another motion ("throw" only in "throw a punch", "collapse" only
  in "walks as if about to collapse") counts only next to one of those (``bound``);
* an object or a body part beside a known motion only says how it is done ("walks to the door", "bends at
  the hips"), and so do a few minor motions ("bows and looks down");
* words of neither kind (subjects, scene and animation-tool words, adjectives) ask for nothing and are
  ignored, so "npc strolling down the street, loopable" is not flagged for "street" or "loopable";
* a misspelt word counts as the word it is one edit away from (same first letter), unless it is a real word
  itself (``real_words`` of the word lists: "class" is not "claps").

The closest things the model knows come from the concept's hand-written ``near`` list ("sit" -> bow, walk),
else from letter-trigram similarity to the words of each action.

Folders without ``vocab.json``: a folder whose text encoder is CLIP (an imported published model, trained on
HumanML3D) answers "open vocabulary (HumanML3D): not checked" unless a ``vocab.json`` was made for it from
HumanML3D's captions (``Vocabulary.from_dataset``, ``bamm vocab --write --data <HumanML3D>``); any other
folder gets the vocabulary of the captions ``data/captions.py`` writes for the Bandai-Namco labels (what the
shipped weights were trained on).

Modules, each importing only those above it: ``words`` (the word lists ``WORDS``, tokens, base forms, typos,
trigram similarity), ``build`` (building a vocabulary from caption units, the shipped captions or a dataset
folder), ``model`` (``Vocabulary``, ``Check``, ``vocab.json``), ``folders`` (a folder's vocabulary, ``check``,
``write_vocabulary``). Standard library only (json, re): the Blender add-on runs it in Blender's own Python
while the user types.
"""

from .build import HUMANML3D_HINT
from .folders import check, for_folder, is_open, write_vocabulary
from .model import FILE, OPEN_NOTE, Check, Vocabulary
from .words import WORDS, _inflections, tokens

__all__ = ["FILE", "HUMANML3D_HINT", "OPEN_NOTE", "WORDS", "Check", "Vocabulary", "check", "for_folder",
           "is_open", "tokens", "write_vocabulary"]
