"""pipelines/dedupe"""
