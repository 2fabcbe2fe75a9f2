# Reference operating characteristics from R BOIN 2.7.2 (get.oc), for
# tests/escalation/test_boin_options.py. Built from source: the CRAN mirror github:cran/BOIN at
# "version 2.7.2" (and its import Iso), R CMD INSTALL -l LIB; run with
#   Rscript tests/data/boin_getoc/get_oc_reference.R LIB tests/data/boin_getoc/get_oc_reference.csv
args <- commandArgs(trailingOnly = TRUE)
.libPaths(c(args[1], .libPaths()))
library(BOIN)
stopifnot(as.character(packageVersion("BOIN")) == "2.7.2")
ntrial <- 20000
scenarios <- list(
  list(name = "default", p = c(0.05, 0.15, 0.30, 0.45, 0.60), ncohort = 10, cohortsize = 3,
       n.earlystop = 100, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE),
  list(name = "n_earlystop_9", p = c(0.05, 0.15, 0.30, 0.45, 0.60), ncohort = 10, cohortsize = 3,
       n.earlystop = 9, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE),
  list(name = "extrasafe", p = c(0.30, 0.42, 0.55, 0.65, 0.75), ncohort = 10, cohortsize = 3,
       n.earlystop = 100, extrasafe = TRUE, offset = 0.05, boundMTD = FALSE),
  list(name = "extrasafe_offset_0.1", p = c(0.25, 0.40, 0.55, 0.65, 0.75), ncohort = 10, cohortsize = 3,
       n.earlystop = 100, extrasafe = TRUE, offset = 0.10, boundMTD = FALSE),
  list(name = "boundMTD", p = c(0.10, 0.25, 0.38, 0.50, 0.60), ncohort = 10, cohortsize = 3,
       n.earlystop = 100, extrasafe = FALSE, offset = 0.05, boundMTD = TRUE),
  list(name = "all_options", p = c(0.15, 0.30, 0.45, 0.60, 0.70), ncohort = 8, cohortsize = 3,
       n.earlystop = 12, extrasafe = TRUE, offset = 0.05, boundMTD = TRUE),
  list(name = "cohort_1_earlystop_6", p = c(0.08, 0.2, 0.3, 0.5), ncohort = 18, cohortsize = 1,
       n.earlystop = 6, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE)
)
rows <- list()
for (s in scenarios) {
  oc <- suppressWarnings(get.oc(target = 0.3, p.true = s$p, ncohort = s$ncohort, cohortsize = s$cohortsize,
                                n.earlystop = s$n.earlystop, extrasafe = s$extrasafe, offset = s$offset,
                                boundMTD = s$boundMTD, ntrial = ntrial, seed = 2027))
  for (j in seq_along(s$p)) {
    rows[[length(rows) + 1]] <- data.frame(
      scenario = s$name, level = j, true_tox = s$p[j], ncohort = s$ncohort, cohortsize = s$cohortsize,
      n_earlystop = s$n.earlystop, extrasafe = s$extrasafe, offset = s$offset, boundMTD = s$boundMTD,
      ntrial = ntrial, selection_pct = oc$selpercent[j], mean_participants = oc$npatients[j],
      mean_dlts = oc$ntox[j], no_mtd_pct = oc$percentstop, total_n = oc$totaln)
  }
}
write.csv(do.call(rbind, rows), args[2], row.names = FALSE)
