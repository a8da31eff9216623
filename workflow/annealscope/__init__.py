"""annealscope: data source utility as scaling curves of domain metrics against total compute."""

__version__ = "0.1.0"
