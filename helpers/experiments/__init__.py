"""One experiment module per notebook: the runners, the explorers' pure functions and the exercise
checkers that a notebook calls. They import the core equipment and the from-scratch science
(``helpers.scratch``), never one another.
"""
