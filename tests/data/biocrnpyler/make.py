"""Regenerate scaffold.xml with BioCRNpyler (the file tests/test_sbml_units.py runs through libRoadRunner).

    python tests/data/biocrnpyler/make.py      # biocrnpyler 1.3.4 wrote the committed file
"""

from pathlib import Path

from biocrnpyler import ChemicalReactionNetwork, Reaction, Species

X, Y, S, C = (Species(n) for n in "XYSC")
crn = ChemicalReactionNetwork(species=[X, Y, S, C],
                              reactions=[Reaction.from_massaction([X], [Y], k_forward=2, k_reverse=1),
                                         Reaction.from_massaction([S, Y], [C], k_forward=1.5, k_reverse=0.5)],
                              initial_concentration_dict={X: 20, S: 1})
crn.write_sbml_file(str(Path(__file__).with_name("scaffold.xml")))
