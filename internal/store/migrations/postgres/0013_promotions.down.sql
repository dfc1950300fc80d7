DROP TABLE promotions;
DROP TABLE approvals;
