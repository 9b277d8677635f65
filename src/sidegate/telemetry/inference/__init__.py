"""The inference log: sampled requests and answers, their row, and its writer."""
