"""pipelines/readers"""
