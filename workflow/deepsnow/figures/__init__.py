"""The figures of the paper (1-6) and two more (7: artifact measures, 8: paired error vs metrics).

One ``deepsnow figures --figure N`` job per figure, PNG and PDF, from the files
of the earlier stages (``dataset/testA.npz``, ``samples/epoch_NNN.npz``,
``train/losses.csv``, ``metrics/metrics.csv``, ``correlations.csv``,
``pca.csv``/``pca.json``). :mod:`~deepsnow.figures.table` lists every figure,
its inputs and its builder: start there. The drawing modules are named for what
they show (:mod:`~deepsnow.figures.translations`: 1, 2, 4;
:mod:`~deepsnow.figures.training`: 3, 5, 8; :mod:`~deepsnow.figures.pca`: 6;
:mod:`~deepsnow.figures.generator_artifacts`: 7);
:mod:`~deepsnow.figures.artifact_measures` holds the pure numpy artifact
measures. matplotlib is imported only when a figure is drawn.
"""
