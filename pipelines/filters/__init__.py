"""pipelines/filters"""
