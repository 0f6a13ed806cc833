"""What several test folders share: the Keras models they build (``models``), what Keras says about them
(``reference``, ``interpreter``) and the saved model files of the structure tests (``zoo``).

Test modules import from here, never from another test module or a conftest.
"""
