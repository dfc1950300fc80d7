DROP TABLE task_tag_args;
DROP TABLE watches;
DROP TABLE tag_repos;
