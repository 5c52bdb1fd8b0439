"""The figures of the paper (1-6) and two more (7: artifact measures, 8: paired error vs metrics).

One ``deepsnow figures --figure N`` job per figure, PNG and PDF, from the files
of the earlier stages (``dataset/testA.npz``, ``samples/epoch_NNN.npz``,
``train/losses.csv``, ``metrics/metrics.csv``, ``correlations.csv``,
``pca.csv``/``pca.json``). :mod:`~deepsnow.figures.artifacts` holds the pure
numpy artifact measures; :mod:`~deepsnow.figures.make` builds a figure without
writing anything; matplotlib is imported only when a figure is drawn.
"""
